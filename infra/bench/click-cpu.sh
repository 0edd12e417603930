#!/usr/bin/env bash
# Server CPU per click, for comparing builds: runs the click load against a fresh runner of
# each binary given, ROUNDS times (every other round in reverse order), and prints
# requests/s, p99 and the runner's CPU time per answered click (user + kernel, from
# /proc/<pid>/stat), which drifts less than requests/s on a shared 2-core machine.
#
# Usage: infra/bench/click-cpu.sh OLD_BINARY NEW_BINARY…   (DURATION=8s ROUNDS=4)
# Needs: wrk, python3, Linux's /proc.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
take_binaries "$@"
require wrk
DURATION=${DURATION:-8s}
ROUNDS=${ROUNDS:-4}
ticks=$(getconf CLK_TCK)
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# utime + stime of a process, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

for round in $(seq "$ROUNDS"); do
  # Each round reverses the order, so that neither build always runs first.
  order=("${bins[@]}")
  if [ $((round % 2)) -eq 0 ]; then
    order=()
    for ((i = ${#bins[@]} - 1; i >= 0; i--)); do order+=("${bins[i]}"); done
  fi
  for bin in "${order[@]}"; do
    rm -rf "$work/data"
    "$bin" serve --addr 127.0.0.1:0 --data "$work/data" --trust-proxy >"$work/out" 2>"$work/err" &
    pid=$!
    url=$(wait_for_output "$work/out" "$TRACKING_LINK") ||
      { echo "click-cpu.sh: $bin did not start" >&2; exit 1; }
    before=$(cpu_ticks "$pid")
    wrk --latency -t2 -c32 -d"$DURATION" -s infra/bench/click.lua "$url" >"$work/wrk"
    after=$(cpu_ticks "$pid")
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
    pid=
    read -r requests rps _ p99 _ < <(wrk_stats "$work/wrk")
    python3 -c "print(f'round $round $bin: {$rps:,.0f} clicks/s, p99 $p99 ms, '
                      f'{$((after - before)) / $ticks * 1e6 / $requests:.1f} µs of runner CPU a click')"
  done
done
