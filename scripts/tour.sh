#!/usr/bin/env bash
# Runs the README's tour and the node-writing guide's commands as written, twice, on a
# fresh clone of this repository, against `mqttcal lab` while another broker holds port
# 1883 (one is started if nothing listens there). Each command's exit code and a key part
# of its output are checked; a command of the docs without a check here, or a check
# without its command, fails the run, so the docs and this script move together.
#
# The clone builds into this checkout's target directory (or CARGO_TARGET_DIR), so what
# is built already is reused. Needs git, cargo and Mosquitto (`scripts/test.sh` installs it;
# MQTTCAL_MOSQUITTO names it).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
  for _ in $(seq 100); do
    alive=0
    for p in "${pids[@]}"; do kill -0 -- "-$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -KILL -- "-$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "tour: $*" >&2
  exit 1
}

listening() { # port: whether something accepts connections on 127.0.0.1:port
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

echo "== tour: a fresh clone in $work"
git clone -q "$repo" "$work/mqttcal"
cd "$work/mqttcal"
if [ -z "$(git -C "$repo" status --porcelain --untracked-files=no)" ]; then
  # The same sources as the checkout, which built into the same target directory: dated
  # at their commit, so cargo takes what it built there since as fresh instead of
  # building it again (and builds again what is older than the commit).
  committed=$(git log -1 --format=%cd --date=iso-strict HEAD)
  find . -path ./.git -prune -o -exec touch -h -d "$committed" {} +
fi
cargo build -q --release -p mqttcal-cli
cargo build -q -p mqttcal-examples --bin custom_node
bin="$CARGO_TARGET_DIR/release/mqttcal"
# What `cargo run --release -p mqttcal-cli --` runs, once built.
mqttcal() { "$bin" "$@"; }

if ! listening 1883; then
  mosquitto_bin=${MQTTCAL_MOSQUITTO:-$(command -v mosquitto || echo /usr/sbin/mosquitto)}
  [ -x "$mosquitto_bin" ] || fail "nothing listens on 1883 and Mosquitto is missing: run scripts/test.sh (as root on Debian) first"
  setsid "$mosquitto_bin" -p 1883 >"$work/mosquitto.log" 2>&1 &
  pids+=($!)
  disown
  for _ in $(seq 50); do listening 1883 && break; sleep 0.1; done
  listening 1883 || fail "the stand-in broker on 1883 did not start: $(cat "$work/mosquitto.log")"
fi

echo "== tour: mqttcal lab (another broker holds 1883)"
setsid "$bin" lab >"$work/lab.out" 2>"$work/lab.err" &
lab=$!
pids+=("$lab")
disown
for _ in $(seq 600); do
  grep -q '^then try:' "$work/lab.out" && break
  kill -0 "$lab" 2>/dev/null || fail "the lab ended: $(cat "$work/lab.err")"
  sleep 0.1
done
grep -q '^then try:' "$work/lab.out" || fail "the lab did not say it was ready: $(cat "$work/lab.out")"
line=$(grep -m1 '^ *export MQTTCAL_BROKER=' "$work/lab.out") || fail "the lab printed no export line"
eval "$line"
case "$MQTTCAL_BROKER" in
  *:1883) fail "the lab took port 1883, which another broker holds" ;;
esac
echo "   $line"

# The checks: a piece of the command (the first check whose piece the command contains
# applies), the exit code, and a piece its output must hold.
checks=(
  "map '*'|0|\"from\":\"labd\""
  "map thermo|0|\"id\":\"read\""
  "ping testnode|0|\"uptime\""
  "labd settings|0|\"NPLC\""
  "\"repetitions\": 3, \"NPLC\": 10|0|\"readings\""
  "labd NPLC|0|\"NPLC\":1.0"
  "\"mode\": \"differential\"|0|\"differential\""
  "\"repetitions\": 20|0|\"index\":19"
  "watch meas|bg|DC-measurement"
  "datad query|0|\"standard\":\"Z1\""
  "datad stats|0|\"stored\""
  "datad export|0|export.csv"
  "save_config|0|\"hash\""
  "datad save_job|0|\"reply\""
  "\"kind\": \"joined\"|0|joined"
  "logd add|0|\"reply\""
  "logd verify|0|\"ok\":true"
  "cald checkin|0|\"reply\""
  "cald start|0|\"job\":\"J-"
  "follow J-|0|done"
  "watch progress|bg|\"i\""
  "datad results|0|\"standard_uncertainty\""
  "\"kind\": \"job\"|0|done: Z1 ="
  "tpld certificate|0|dcc.xml"
  "tpld review|0|\"reply\""
  "tpld authorise|0|\"reply\""
  "tpld issue|0|CAL-"
  "\"kind\": \"calibrations\"|0|\"documents\""
  "\"kind\": \"standard\"|0|\"documents\""
  "cald checkout|0|\"reply\""
  "ctrld status|0|\"nodes\""
  "\"capability\": \"jobs\"|0|\"reply\""
  "\"capability\": \"save_job\"|1|forbidden"
  "mqttcal watch  |bg|request"
  "custom_node|bg|"
  "\"channel\": 3|0|\"celsius\""
  "\"chanel\": 3|1|chanel"
  "stop thermo|0|thermo: stopped"
)
used=()

check_for() { # command: prints "index|exit|piece" of its check
  local i
  for i in "${!checks[@]}"; do
    local piece=${checks[$i]%%|*}
    if [[ "$1" == *"$piece"* ]]; then
      echo "$i|${checks[$i]#*|}"
      return 0
    fi
  done
  return 1
}

# The commands of a markdown file's first ```sh block after a heading: lines that start
# with `mqttcal ` or `cargo run`.
commands_of() { # file heading
  awk -v h="$2" '
    index($0, h) == 1 { inside = 1; next }
    inside && /^```sh/ { block = 1; next }
    block && /^```/ { exit }
    block && (/^mqttcal / || /^cargo run/) { print }
  ' "$1"
}

mapfile -t tour < <(commands_of README.md "## A short tour")
mapfile -t guide < <(commands_of docs/writing-a-node.md "## 8. Run and call it")
[ "${#tour[@]}" -gt 20 ] || fail "found only ${#tour[@]} commands in the README's tour"
[ "${#guide[@]}" -ge 4 ] || fail "found only ${#guide[@]} commands in the guide"

job=""

wait_for_thermo() {
  for _ in $(seq 300); do
    mqttcal ping thermo --timeout 0.5 >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  fail "the custom node did not answer ping within 60 s"
}

run_one() { # the command as written
  local written=$1 found i expect piece cmd out rc
  found=$(check_for "$written") || fail "no check for: $written"
  i=${found%%|*}
  expect=$(cut -d'|' -f2 <<<"$found")
  piece=$(cut -d'|' -f3- <<<"$found")
  used[$i]=1
  cmd=${written//J-.../$job}
  if [ "$expect" = bg ]; then
    # A command that runs until stopped: in the background, its output kept.
    cmd=${cmd%&*}
    out="$work/bg-${#pids[@]}.log"
    setsid bash -c "$(declare -f mqttcal); bin='$bin'; $cmd" >"$out" 2>&1 &
    pids+=($!)
    disown
    bg_checks+=("$out|$piece|$written")
    if [[ "$cmd" == *custom_node* ]]; then wait_for_thermo; fi
    printf '   %-70.70s  started\n' "$written"
    return 0
  fi
  set +e
  out=$(eval "$cmd" 2>&1 </dev/null)
  rc=$?
  set -e
  [ "$rc" = "$expect" ] || fail "exit $rc (not $expect) from: $cmd
${out:0:3000}"
  [[ "$out" == *"$piece"* ]] || fail "no \`$piece\` in the output of: $cmd
${out:0:3000}"
  if [[ "$written" == *"cald start"* ]]; then
    job=$(grep -o '"job":"J-[^"]*"' <<<"$out" | head -1 | cut -d'"' -f4)
    [ -n "$job" ] || fail "no job id from: $out"
  fi
  printf '   %-70.70s  exit %s\n' "$written" "$rc"
}

for round in 1 2; do
  echo "== tour: round $round"
  bg_checks=()
  first_bg=${#pids[@]}
  for c in "${tour[@]}" "${guide[@]}"; do
    run_one "$c"
  done
  sleep 1
  for b in "${bg_checks[@]}"; do
    IFS='|' read -r file piece written <<<"$b"
    grep -qF -- "$piece" "$file" || fail "no \`$piece\` in what this printed: $written
$(head -c 2000 "$file")"
  done
  for p in "${pids[@]:$first_bg}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
done

for i in "${!checks[@]}"; do
  [ -n "${used[$i]:-}" ] || fail "a check matches no command of the docs: ${checks[$i]}"
done
kill -0 "$lab" 2>/dev/null || fail "the lab ended during the tour: $(tail -20 "$work/lab.err")"
echo "== tour: every command of the README's tour and of the guide worked, twice"
