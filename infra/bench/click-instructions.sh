#!/usr/bin/env bash
# Instructions a click costs the local runner, for comparing builds on a machine whose speed
# drifts: valgrind counts the instructions executed inside the request handler
# (`shared::routes::respond`) and the group committer (`Shared::commit_batch`) while wrk sends
# clicks, and divides by the clicks stored. The count does not drift from run to run as time
# does; it leaves out the kernel, hyper and tokio, the same in every build.
#
# Usage: infra/bench/click-instructions.sh BINARY…   (DURATION=6s)
# The binaries need their symbols:
#   CARGO_PROFILE_RELEASE_STRIP=none cargo build --release -p leadsrefer
# Needs: valgrind and wrk (Debian: apt-get install valgrind wrk), python3.
# Under valgrind, SHA-256 runs without the CPU's SHA extensions, so the keyed hash of the
# address counts for more than it costs natively.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
take_binaries "$@"
require valgrind wrk
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

for bin in "${bins[@]}"; do
  rm -rf "$work/data" "$work/callgrind.out"
  valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out" --collect-atstart=no \
    --toggle-collect='shared::routes::respond*' \
    --toggle-collect='shared::adapters::sqlite::Shared::commit_batch*' \
    "$bin" serve --addr 127.0.0.1:0 --data "$work/data" --trust-proxy >"$work/out" 2>"$work/err" &
  pid=$!
  url=$(wait_for_output "$work/out" "$TRACKING_LINK" 300) ||
    { echo "click-instructions.sh: $bin did not start under valgrind" >&2; exit 1; }
  wrk -t1 -c4 -d"${DURATION:-6s}" -s infra/bench/click.lua "$url" >/dev/null
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  pid=
  clicks=$(stored CLICK "$work/data/leadsrefer.sqlite3")
  python3 - "$clicks" "$work/callgrind.out" "$bin" <<'PY'
import re, sys
clicks = int(sys.argv[1])
summary = int(re.search(r"^summary: (\d+)", open(sys.argv[2]).read(), re.M).group(1))
if summary == 0:
    sys.exit(f"{sys.argv[3]}: no instructions counted: does the binary have its symbols?")
print(f"{sys.argv[3]}: {clicks} clicks, {summary / clicks:,.0f} instructions a click "
      "(handler and group committer)")
PY
done
