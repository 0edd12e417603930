# What the load scripts share; sourced, not run.

# Stops the script, naming what to install, unless every TOOL is on the PATH.
require() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null ||
      { echo "$(basename "$0"): $tool is missing (Debian: apt-get install $tool)" >&2; exit 1; }
  done
}

# For the scripts comparing builds (BINARY…): the binaries, as absolute paths from where the
# script was run, in the array `bins`; then the repository's root as the working directory.
take_binaries() {
  [ "$#" -ge 1 ] || { echo "usage: $0 BINARY…" >&2; exit 2; }
  bins=()
  local bin
  for bin in "$@"; do bins+=("$(realpath "$bin")"); done
  cd "$(dirname "${BASH_SOURCE[0]}")/../.."
}

# Builds the release runner (reporting progress on stderr) and sets `bin` to it.
build_release() {
  echo "building the release binary…" >&2
  cargo build --release --locked -p leadsrefer >&2
  bin=target/release/leadsrefer
}

# The demo tracking link the runner prints as it starts.
TRACKING_LINK='http://127\.0\.0\.1:[0-9]+/c/[A-Za-z0-9]+\?sub1=demo'

# Waits up to TRIES tenths of a second for FILE to show PATTERN; prints its first match.
wait_for_output() {
  local file=$1 pattern=$2 tries=${3:-100} found
  for _ in $(seq "$tries"); do
    found=$(grep -oE "$pattern" "$file" | head -1 || true)
    [ -n "$found" ] && { echo "$found"; return 0; }
    sleep 0.1
  done
  return 1
}

# Rows of a kind (`CLICK`, `CONV`) in a stopped runner's database.
stored() {
  python3 - "$1" "$2" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[2])
print(db.execute("SELECT count(*) FROM items WHERE pk LIKE ?", (sys.argv[1] + "#%",)).fetchone()[0])
PY
}

# A `wrk --latency` log as "requests rps p50_ms p99_ms non_2xx_3xx".
wrk_stats() {
  python3 - "$1" <<'PY'
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
