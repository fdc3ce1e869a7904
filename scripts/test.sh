#!/usr/bin/env bash
# Runs the whole test suite against real services.
#
# On Debian, run as root, it first installs what is missing: Mosquitto (and
# mosquitto_passwd), openssl, socat, xmllint (libxml2-utils) and xmlsec1 (to validate
# and sign certificates), pdftotext (poppler-utils, to read PDF certificates back), the
# PostgreSQL server binaries, Chromium and its WebDriver (chromium, chromium-driver, for the
# browser test of the web interface), cmake and OpenSSL's headers (to build the Paho C
# client of the `paho` feature), and python3 with paho-mqtt 2.x in a virtual environment.
# It then exports where they are (MQTTCAL_MOSQUITTO, MQTTCAL_MOSQUITTO_PASSWD,
# MQTTCAL_OPENSSL, MQTTCAL_SOCAT, MQTTCAL_XMLLINT, MQTTCAL_XMLSEC1, MQTTCAL_PDFTOTEXT,
# MQTTCAL_PG_BINDIR, MQTTCAL_PYTHON, MQTTCAL_CHROMIUM, MQTTCAL_CHROMEDRIVER) and runs `cargo test --workspace` with any extra
# arguments. Without arguments it then also tests the PDF certificates (the default-off
# `pdf` feature, which compiles Typst in) and the transports' conformance suite with the
# default-off `paho` feature.
# The tests start their own brokers and databases on free ports.
set -euo pipefail
cd "$(dirname "$0")/.."

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
pg_bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

missing=()
have mosquitto || missing+=(mosquitto)
have openssl || missing+=(openssl)
have socat || missing+=(socat)
have xmllint || missing+=(libxml2-utils)
have xmlsec1 || missing+=(xmlsec1)
have pdftotext || missing+=(poppler-utils)
have chromium || missing+=(chromium)
have chromedriver || missing+=(chromium-driver)
have cmake || missing+=(cmake)
[ -f /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
[ -n "$(pg_bindir)" ] && [ -x "$(pg_bindir)/initdb" ] || missing+=(postgresql)
have python3 || missing+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "scripts/test.sh: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # The Debian packages start system services; the tests start their own.
  else
    echo "scripts/test.sh: missing ${missing[*]}; install them (or run this script as root on Debian)" >&2
    exit 1
  fi
fi

venv="${MQTTCAL_VENV:-$PWD/target/test-venv}"
if ! "$venv/bin/python" -c 'import paho.mqtt, sys; sys.exit(0 if paho.mqtt.__version__.startswith("2.") else 1)' >/dev/null 2>&1; then
  echo "scripts/test.sh: making a Python virtual environment with paho-mqtt 2.x in $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'paho-mqtt>=2,<3'
fi

find_bin() { command -v "$1" 2>/dev/null || echo "/usr/sbin/$1"; }
export MQTTCAL_MOSQUITTO="${MQTTCAL_MOSQUITTO:-$(find_bin mosquitto)}"
export MQTTCAL_MOSQUITTO_PASSWD="${MQTTCAL_MOSQUITTO_PASSWD:-$(find_bin mosquitto_passwd)}"
export MQTTCAL_OPENSSL="${MQTTCAL_OPENSSL:-$(find_bin openssl)}"
export MQTTCAL_SOCAT="${MQTTCAL_SOCAT:-$(find_bin socat)}"
export MQTTCAL_XMLLINT="${MQTTCAL_XMLLINT:-$(find_bin xmllint)}"
export MQTTCAL_XMLSEC1="${MQTTCAL_XMLSEC1:-$(find_bin xmlsec1)}"
export MQTTCAL_PDFTOTEXT="${MQTTCAL_PDFTOTEXT:-$(find_bin pdftotext)}"
export MQTTCAL_PG_BINDIR="${MQTTCAL_PG_BINDIR:-$(pg_bindir)}"
export MQTTCAL_PYTHON="${MQTTCAL_PYTHON:-$venv/bin/python}"
export MQTTCAL_CHROMIUM="${MQTTCAL_CHROMIUM:-$(find_bin chromium)}"
export MQTTCAL_CHROMEDRIVER="${MQTTCAL_CHROMEDRIVER:-$(find_bin chromedriver)}"

# The fleet test holds a thousand connections (and its broker as many): raise the soft
# limit of open files as far as the hard one allows.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
cargo test --workspace "$@"
if [ $# -eq 0 ]; then
  echo "scripts/test.sh: the PDF certificates (feature pdf)" >&2
  cargo test -p mqttcal-certificates --features pdf
  cargo test -p mqttcal-nodes --features pdf --test tpld
  cargo test -p mqttcal-cli --features pdf --test embedded
  echo "scripts/test.sh: the transports' conformance suite with Paho (feature paho)" >&2
  cargo test -p mqttcal-core --features paho --test conformance
fi
