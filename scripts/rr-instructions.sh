#!/usr/bin/env bash
# Instructions per request/reply round trip, mqttcal over the raw MQTT echo, counted by
# callgrind: unlike times, they hardly depend on the machine's load or wake-up mode (runs
# differ by a few per cent, from the broker's timing).
#
#   scripts/rr-instructions.sh            # builds the `rr` bench, prints one JSON line
#   RR_BIN=path/to/rr scripts/rr-instructions.sh   # counts another build of `rr` (one that
#                                                  # knows `--only`, from this version on)
#
# Each series (raw and mqttcal, QoS 0 and 1) runs alone under callgrind twice, with 200 and
# with 1,200 round trips after the same warm-up; the difference over 1,000 is the cost of
# one round trip in the bench's process (both clients, the node, the runtime; the broker is
# not counted). Needs valgrind and Mosquitto (`MQTTCAL_MOSQUITTO`, see scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v valgrind >/dev/null; then
    echo "valgrind is not installed (Debian: apt-get install valgrind)" >&2
    exit 2
fi
bin=${RR_BIN:-}
if [ -z "$bin" ]; then
    cargo build --release -q -p mqttcal-benches --bin rr
    bin=${CARGO_TARGET_DIR:-target}/release/rr
fi
if [ ! -x "$bin" ]; then
    echo "no rr binary at $bin (build it: cargo build --release -p mqttcal-benches --bin rr)" >&2
    exit 2
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

count() { # series calls -> instructions
    if ! valgrind --tool=callgrind --callgrind-out-file="$out/$1-$2" \
        "$bin" --mosquitto nodelay --only "$1" --n "$2" >/dev/null 2>"$out/log"; then
        echo "$bin --only $1 --n $2 failed under valgrind:" >&2
        grep -v '^==' "$out/log" | tail -20 >&2
        exit 1
    fi
    local n
    n=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$out/log")
    if [ -z "$n" ] || [ "$n" -eq 0 ]; then
        echo "callgrind counted nothing for $1 (is $bin the rr bench?)" >&2
        exit 1
    fi
    echo "$n"
}

declare -A per_call
for series in raw0 ours0 raw1 ours1; do
    small=$(count "$series" 200)
    large=$(count "$series" 1200)
    if [ "$large" -le "$small" ]; then
        echo "$series: 1,200 calls counted no more than 200 ($large, $small): is $bin the rr bench?" >&2
        exit 1
    fi
    per_call[$series]=$(((large - small) / 1000))
    echo "$series: $small instructions with 200 calls, $large with 1200" >&2
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
printf '{"bench":"rr-instructions","per_call":{"raw_qos0":%d,"mqttcal_qos0":%d,"raw_qos1":%d,"mqttcal_qos1":%d},"ratio_qos0":%s,"ratio_qos1":%s}\n' \
    "${per_call[raw0]}" "${per_call[ours0]}" "${per_call[raw1]}" "${per_call[ours1]}" \
    "$(ratio "${per_call[ours0]}" "${per_call[raw0]}")" \
    "$(ratio "${per_call[ours1]}" "${per_call[raw1]}")"
