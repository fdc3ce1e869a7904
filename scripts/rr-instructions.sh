#!/usr/bin/env bash
# Instructions per request/reply round trip, mqttcal over the raw MQTT echo, counted by
# callgrind: unlike times, they do not depend on the machine's load or wake-up mode.
#
#   scripts/rr-instructions.sh            # builds the `rr` bench, prints one JSON line
#   RR_BIN=path/to/rr scripts/rr-instructions.sh   # counts another build (e.g. an older one)
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
    bin=target/release/rr
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

count() { # series calls -> instructions
    valgrind --tool=callgrind --callgrind-out-file="$out/$1-$2" \
        "$bin" --mosquitto nodelay --only "$1" --n "$2" 2>&1 >/dev/null |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}

declare -A per_call
for series in raw0 ours0 raw1 ours1; do
    small=$(count "$series" 200)
    large=$(count "$series" 1200)
    per_call[$series]=$(((large - small) / 1000))
    echo "$series: $small instructions with 200 calls, $large with 1200" >&2
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
printf '{"bench":"rr-instructions","per_call":{"raw_qos0":%d,"mqttcal_qos0":%d,"raw_qos1":%d,"mqttcal_qos1":%d},"ratio_qos0":%s,"ratio_qos1":%s}\n' \
    "${per_call[raw0]}" "${per_call[ours0]}" "${per_call[raw1]}" "${per_call[ours1]}" \
    "$(ratio "${per_call[ours0]}" "${per_call[raw0]}")" \
    "$(ratio "${per_call[ours1]}" "${per_call[raw1]}")"
