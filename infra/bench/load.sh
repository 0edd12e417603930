#!/usr/bin/env bash
# Load test on loopback: the local runner's click and postback paths against a bare HTTP server
# that only answers 302 (same HTTP stack, same load, same machine), then a check that every
# click answered was stored. Prints a Markdown report for BENCHMARKS.md.
#
# Usage: infra/bench/load.sh   (DURATION=15s CONNECTIONS=32 THREADS=2 ROUNDS=5 to change it)
# Needs: wrk (Debian: apt-get install wrk), curl, python3.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source infra/bench/lib.sh
require wrk curl python3
DURATION=${DURATION:-15s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-5}

build_release
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# Starts a server, waits for its first line naming its URL; sets $url and $pid.
start() {
  local out=$work/$1.out
  shift
  "$@" >"$out" 2>"$work/stderr" &
  pid=$!
  pids+=("$pid")
  url=$(wait_for_output "$out" 'http://127\.0\.0\.1:[0-9]+') || {
    echo "load.sh: $1 did not start" >&2
    exit 1
  }
}

# Runs wrk; prints "requests rps p50 p99".
load() {
  local log=$work/wrk.log
  wrk --latency -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" "$@" >"$log"
  wrk_stats "$log"
}

# A round: the bare server, then a fresh runner under the same load in each shape: many
# visitors (click.lua), then one visitor flooding the link (flood.lua). What a runner stored is
# counted the moment the load ends, while it still runs: clicks stored per second, and the
# backlog (answered, not yet on disk) at that moment, in clicks and in milliseconds of stored
# traffic. Then it stops cleanly, and every click answered must be stored. Rounds alternate the
# servers, so that the machine's drift over a minute (seen here: the bare server alone between
# 88,000 and 114,000 requests/s) falls on all alike; the median round is the result.

seconds=$(python3 -c "import re,sys; v,u=re.fullmatch(r'(\d+)([smh]?)','$DURATION').groups(); print(int(v)*{'':1,'s':1,'m':60,'h':3600}[u])")
rows=()
declare -A ratios=([visitors]="" [flood]="")
lost=0
worst_backlog_ms=0
for round in $(seq "$ROUNDS"); do
  echo "round $round of $ROUNDS…" >&2
  start baseline "$bin" baseline-302 --addr 127.0.0.1:0
  read -r b_requests b_rps b_p50 b_p99 b_errors < <(load -s infra/bench/click.lua "$url/c/anything")
  kill "$pid"; wait "$pid" 2>/dev/null || true

  for shape in visitors flood; do
    script=infra/bench/click.lua
    [ "$shape" = flood ] && script=infra/bench/flood.lua
    rm -rf "$work/data"
    start runner "$bin" serve --addr 127.0.0.1:0 --data "$work/data" --trust-proxy --no-demo-history
    tracking=$(grep -oE "$TRACKING_LINK" "$work/runner.out" | head -1)
    read -r c_requests c_rps c_p50 c_p99 c_errors < <(load -s "$script" "$tracking")
    stored_at_end=$(stored CLICK "$work/data/leadsrefer.sqlite3")
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true   # a clean shutdown
    stored_clicks=$(stored CLICK "$work/data/leadsrefer.sqlite3")
    # How the committer kept up, as the runner logged it at the clean stop.
    held=$(grep -oE 'writes_held=[0-9]+ longest_hold_ms=[0-9.]+' "$work/stderr" | tail -1 |
      sed -E 's/writes_held=([0-9]+) longest_hold_ms=([0-9.]+)/\1 (longest \2 ms)/')
    # wrk counts the requests answered within its run; one still in flight as it stops is
    # stored but not counted, so more stored than answered is no fault: fewer is a lost click.
    [ "$stored_clicks" -ge "$c_requests" ] || lost=$((lost + c_requests - stored_clicks))
    read -r stored_rps backlog backlog_ms ratio < <(python3 -c "
stored, answered, seconds, bare = $stored_at_end, $c_requests, $seconds, $b_rps
rate = stored / seconds
backlog = max(answered - stored, 0)
print(f'{rate:.0f} {backlog} {backlog / rate * 1000 if rate else 0:.1f} {rate / bare:.1%}')")
    worst_backlog_ms=$(python3 -c "print(max($worst_backlog_ms, $backlog_ms))")
    ratios[$shape]="${ratios[$shape]} ${ratio%\%}"
    rows+=("| $round | $shape | $b_rps | $b_p99 | $c_rps | $c_p50 | $c_p99 | $((b_errors + c_errors)) | $c_requests | $stored_rps | $backlog ($backlog_ms ms) | $stored_clicks | ${held:-0} | $ratio |")
  done
done

# The postback path, once, on a fresh runner: new conversions of one click, each its own txn.
rm -rf "$work/data"
start runner "$bin" serve --addr 127.0.0.1:0 --data "$work/data" --trust-proxy
tracking=$(grep -oE "$TRACKING_LINK" "$work/runner.out" | head -1)
template=$(grep -oE 'http://127\.0\.0\.1:[0-9]+/postback\?[^ ]+' "$work/runner.out" | head -1)
click=$(curl -s -o /dev/null -w '%{redirect_url}' -A 'Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0' "$tracking" | sed -E 's/.*clickid=([A-Z0-9]+).*/\1/')
postback=$(echo "$template" | sed -E "s/\{click_id\}/$click/; s/&txn_id=[^&]*//")
read -r p_requests p_rps p_p50 p_p99 p_errors < <(load -s infra/bench/postback.lua "$postback")
kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
stored_conversions=$(stored CONV "$work/data/leadsrefer.sqlite3")

median() {
  python3 -c "import statistics, sys; print(f'{statistics.median(float(r) for r in sys.argv[1:]):.1f}%')" $1
}

cat <<REPORT
Load: $THREADS wrk threads, $CONNECTIONS connections, $DURATION per run, loopback, $(nproc) cores.

| round | shape | bare 302 req/s | bare p99 ms | click req/s answered | click p50 ms | click p99 ms | non-2xx/3xx | clicks answered | clicks stored/s as the load ended | backlog then | clicks stored after a clean stop | clicks held for the committer | stored/s / bare |
| ---: | :--- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
$(printf '%s\n' "${rows[@]}")

Median clicks *stored* per second, of the bare 302 server's requests per second: **$(median "${ratios[visitors]}")** with many visitors, **$(median "${ratios[flood]}")** with one visitor flooding. Largest backlog as a load ended: $worst_backlog_ms ms of stored traffic (the runner's promise: 50 ms). Clicks lost after a clean stop: $lost.
Postbacks (\`GET /postback\`, new conversions): $p_rps requests/s, p50 $p_p50 ms, p99 $p_p99 ms, non-2xx/3xx $p_errors; conversions answered $p_requests, stored $stored_conversions.
REPORT
