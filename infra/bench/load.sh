#!/usr/bin/env bash
# Load test on loopback: the local runner's click and postback paths against a bare HTTP server
# that only answers 302 (same HTTP stack, same load, same machine), then a check that every
# click answered was stored. Prints a Markdown report for BENCHMARKS.md.
#
# Usage: infra/bench/load.sh          (DURATION=15s CONNECTIONS=32 THREADS=2 to change the load)
# Needs: wrk (Debian: apt-get install wrk), python3.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
command -v wrk >/dev/null || { echo "load.sh: wrk is missing (Debian: apt-get install wrk)" >&2; exit 1; }
DURATION=${DURATION:-15s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}

echo "building the release binary…" >&2
cargo build --release --locked -p leadsrefer >&2
bin=target/release/leadsrefer
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
  for _ in $(seq 100); do
    url=$(grep -oE 'http://127\.0\.0\.1:[0-9]+' "$out" | head -1 || true)
    [ -n "$url" ] && return
    sleep 0.1
  done
  echo "load.sh: $1 did not start" >&2
  exit 1
}

# Runs wrk; prints "requests rps p50 p99".
load() {
  local log=$work/wrk.log
  wrk --latency -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" "$@" >"$log"
  python3 - "$log" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def ms(label):
    value, unit = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", text, re.M).groups()
    return round(float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit], 3)
requests = int(re.search(r"(\d+) requests in", text).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
print(requests, rps, ms("50%"), ms("99%"), errors.group(1) if errors else 0)
PY
}

start baseline "$bin" baseline-302 --addr 127.0.0.1:0
read -r b_requests b_rps b_p50 b_p99 b_errors < <(load -s infra/bench/click.lua "$url/c/anything")
kill "$pid"; wait "$pid" 2>/dev/null || true

start runner "$bin" serve --addr 127.0.0.1:0 --data "$work/data" --trust-proxy
tracking=$(grep -oE 'http://127\.0\.0\.1:[0-9]+/c/[A-Za-z0-9]+\?sub1=demo' "$work/runner.out" | head -1)
template=$(grep -oE 'http://127\.0\.0\.1:[0-9]+/postback\?[^ ]+' "$work/runner.out" | head -1)
read -r c_requests c_rps c_p50 c_p99 c_errors < <(load -s infra/bench/click.lua "$tracking")
click=$(curl -s -o /dev/null -w '%{redirect_url}' -A 'Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0' "$tracking" | sed -E 's/.*clickid=([A-Z0-9]+).*/\1/')
postback=$(echo "$template" | sed -E "s/\{click_id\}/$click/; s/&txn_id=[^&]*//")
read -r p_requests p_rps p_p50 p_p99 p_errors < <(load -s infra/bench/postback.lua "$postback")
kill -TERM "$pid"; wait "$pid" 2>/dev/null || true   # a clean shutdown

stored=$(python3 - "$work/data/leadsrefer.sqlite3" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
clicks = db.execute("SELECT count(*) FROM items WHERE pk LIKE 'CLICK#%'").fetchone()[0]
conversions = db.execute("SELECT count(*) FROM items WHERE pk LIKE 'CONV#%'").fetchone()[0]
print(clicks, conversions)
PY
)
read -r stored_clicks stored_conversions <<<"$stored"
# The runner stored the load's clicks plus the one curl click, and the postbacks' conversions.
answered_clicks=$((c_requests + 1))

cat <<REPORT
| run ($THREADS wrk threads, $CONNECTIONS connections, $DURATION, loopback, $(nproc) cores) | requests | requests/s | p50 ms | p99 ms | non-2xx/3xx |
| --- | ---: | ---: | ---: | ---: | ---: |
| bare 302 server (\`leadsrefer baseline-302\`) | $b_requests | $b_rps | $b_p50 | $b_p99 | $b_errors |
| click \`GET /c/{link}\` (local runner, SQLite) | $c_requests | $c_rps | $c_p50 | $c_p99 | $c_errors |
| postback \`GET /postback\` (new conversions) | $p_requests | $p_rps | $p_p50 | $p_p99 | $p_errors |

Clicks answered: $answered_clicks; clicks stored after a clean shutdown: $stored_clicks. Conversions answered: $p_requests; stored: $stored_conversions.
Click throughput is $(python3 -c "print(f'{$c_rps / $b_rps:.1%}')") of the bare 302 server's.
REPORT
