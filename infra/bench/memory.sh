#!/usr/bin/env bash
# Memory under a long run of distinct visitors: the local runner takes at least CLICKS clicks
# (default 1,000,000), each from another public address (click.lua), then idles a minute. Its
# resident memory is read from /proc as the load ends and after the minute: all of it, its own
# (anonymous: heap, visitors) and the database pages it maps (file-backed, which the kernel
# reclaims at will). Prints a Markdown report for BENCHMARKS.md.
#
# Usage: infra/bench/memory.sh   (CLICKS=1000000 CONNECTIONS=32 IDLE=60 to change it; runner
# settings such as LEADSREFER_VISITORS_HELD pass through)
# Needs: wrk (Debian: apt-get install wrk), curl, python3.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source infra/bench/lib.sh
require wrk curl python3
CLICKS=${CLICKS:-1000000}
CONNECTIONS=${CONNECTIONS:-32}
IDLE=${IDLE:-60}

build_release
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

"$bin" serve --addr 127.0.0.1:0 --data "$work/data" --trust-proxy --no-demo-history \
  >"$work/runner.out" 2>"$work/stderr" &
pid=$!
wait_for_output "$work/runner.out" 'http://127\.0\.0\.1:[0-9]+' >/dev/null || {
  echo "memory.sh: the runner did not start" >&2
  exit 1
}
tracking=$(grep -oE "$TRACKING_LINK" "$work/runner.out" | head -1)

# kB of the runner's resident memory: all, anonymous, file-backed.
memory() {
  awk '/^VmRSS|^RssAnon|^RssFile/ { printf "%s ", $2 } END { print "" }' "/proc/$pid/status"
}
read -r rss0 anon0 file0 < <(memory)
answered=0
rounds=0
while [ "$answered" -lt "$CLICKS" ]; do
  rounds=$((rounds + 1))
  wrk -t2 -c"$CONNECTIONS" -d20s -s infra/bench/click.lua "$tracking" >"$work/wrk.log"
  answered=$((answered + $(grep -oE '^ +[0-9]+ requests in' "$work/wrk.log" | grep -oE '[0-9]+')))
  echo "  $answered clicks answered" >&2
done
read -r rss1 anon1 file1 < <(memory)
echo "idling ${IDLE}s…" >&2
sleep "$IDLE"
read -r rss2 anon2 file2 < <(memory)
kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
pid=
stored_clicks=$(stored CLICK "$work/data/leadsrefer.sqlite3")

mb() { python3 -c "print(f'{$1 / 1024:.0f}')"; }
cat <<REPORT
$answered clicks from distinct visitors ($CONNECTIONS connections, $rounds runs of wrk), $stored_clicks stored; visitors held exactly: ${LEADSREFER_VISITORS_HELD:-500000} (the rest approximately, in 9 MiB).

| when | resident MiB | own (anonymous) MiB | database pages mapped MiB |
| :--- | ---: | ---: | ---: |
| started | $(mb "$rss0") | $(mb "$anon0") | $(mb "$file0") |
| as the load ended | $(mb "$rss1") | $(mb "$anon1") | $(mb "$file1") |
| after ${IDLE} s idle | $(mb "$rss2") | $(mb "$anon2") | $(mb "$file2") |
REPORT
