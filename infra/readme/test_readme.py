"""The README's walks, run as written: every `sh` block from "A walk through the tracking loop"
to "Run every test", in order, in one shell, against a fresh `leadsrefer serve --no-demo-history`
started as the README says (in an empty folder, so that its data is `./.leadsrefer`), with the
built `leadsrefer` first on the PATH. A walk that breaks fails CI.

What the harness changes, and nothing else:
- the address: `127.0.0.1:3000` becomes the free port the server was started on;
- a block fenced `sh banner` stands for the line the banner prints "for the README's walks":
  the real banner's line runs instead (it must set the same variables).

What it checks:
- every block exits 0 (the shell runs with `set -euo pipefail`);
- a block fenced `text` or `json` right after an `sh` block is what that block prints: `…`
  stands for any text on its line (a line of `…` alone, for any lines), and ids, timestamps,
  dates and 64-digit hex tokens stand for any of their kind, since each run makes new ones;
- no block prints an API error (`"error":{`) that its shown output does not show.

Run through infra/test (after cargo test, which builds the binary); by hand:
  .venv/bin/python -m pytest infra/readme -q     (LEADSREFER_README_SHOW=1 prints each output)
"""

import os
import pathlib
import re
import socket
import subprocess
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
RUNNER = pathlib.Path(os.environ.get("LEADSREFER_BINARY", ROOT / "target/debug/leadsrefer"))
FIRST = "### A walk through the tracking loop with curl"
LAST = "## Run every test"
FENCE = re.compile(r"^([ \t]*)```(\S*)(?: (\S+))?\n(.*?)^\1```\n", re.S | re.M)
MARK = "::leadsrefer-readme-block::"

ULID = r"[0-9A-HJKMNP-TV-Z]{26}"
KINDS = [
    (re.compile(ULID), ULID),
    (re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})"),
     r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})"),
    (re.compile(r"\d{4}-\d{2}-\d{2}"), r"\d{4}-\d{2}-\d{2}"),
    (re.compile(r"\b[0-9a-f]{64}\b"), r"[0-9a-f]{64}"),
]


class Block:
    def __init__(self, kind, tag, text, line):
        self.kind, self.tag, self.text, self.line = kind, tag, text, line
        self.expected = None


def blocks():
    """The walks' shell blocks, each with the output block that follows it, if any."""
    readme = (ROOT / "README.md").read_text()
    start, end = readme.index(FIRST), readme.index(LAST)
    walks = readme[start:end]
    found, previous_end = [], None
    for match in FENCE.finditer(walks):
        line = readme[:start + match.start()].count("\n") + 1
        indent, kind, tag, text = match.groups()
        # Fences may be indented inside a list item: the block's text is then indented too.
        if indent:
            text = "\n".join(l[len(indent):] if l.startswith(indent) else l for l in text.split("\n"))
        between = walks[previous_end:match.start()] if previous_end is not None else None
        if kind in ("text", "json") and found and found[-1].kind == "sh" and between is not None \
                and not between.strip():
            found[-1].expected = text
        elif kind == "sh":
            found.append(Block(kind, tag, text, line))
        previous_end = match.end()
    return found


def pattern(expected):
    """The regular expression an expected output stands for (see the module's doc)."""
    lines = []
    for line in expected.rstrip("\n").split("\n"):
        line = line.rstrip()
        if line == "…":
            lines.append(r"(?:[^\n]*\n)*?[^\n]*")
            continue
        out, rest = "", line
        while rest:
            if rest.startswith("…"):
                out += r"[^\n]*?"
                rest = rest[1:]
                continue
            for kind, regex in KINDS:
                match = kind.match(rest)
                if match:
                    out += regex
                    rest = rest[match.end():]
                    break
            else:
                out += re.escape(rest[0])
                rest = rest[1:]
        lines.append(out)
    return re.compile(r"\A" + r"\n".join(lines) + r"\Z")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_every_walk_of_the_readme_runs_as_written():
    assert RUNNER.exists(), f"{RUNNER} is missing: build it with cargo build -p leadsrefer"
    walk = blocks()
    assert len(walk) >= 10, f"the walks were not found between {FIRST!r} and {LAST!r}"
    folder = tempfile.mkdtemp(prefix="leadsrefer-readme-")
    port = free_port()
    address = f"127.0.0.1:{port}"
    env = dict(os.environ, PATH=f"{RUNNER.parent}:{os.environ['PATH']}", RUST_LOG="warn")
    for name in list(env):
        if name.startswith("LEADSREFER_") and name != "LEADSREFER_BINARY":
            del env[name]
    server = subprocess.Popen([str(RUNNER), "serve", "--no-demo-history", "--addr", address],
                              cwd=folder, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        banner = []
        for line in server.stdout:
            banner.append(line.rstrip("\n"))
            if line.startswith("Press Ctrl-C"):
                break
        walks_line = next((l.strip() for l in banner if l.strip().startswith("B=")), None)
        assert walks_line, "the banner prints a line for the README's walks:\n" + "\n".join(banner)
        script = ["set -euo pipefail"]
        for number, block in enumerate(walk):
            text = block.text.replace("127.0.0.1:3000", address)
            if block.tag == "banner":
                shown = sorted(re.findall(r"(\w+)=", text))
                real = sorted(re.findall(r"(\w+)=", walks_line))
                assert shown == real, f"README.md:{block.line} sets {shown}; the banner {real}"
                text = walks_line
            script.append(f"echo '{MARK}{number}'")
            script.append(text)
        script.append(f"echo '{MARK}end'")
        done = subprocess.run(["bash", "-c", "\n".join(script)], cwd=folder, env=env,
                              capture_output=True, text=True, timeout=900)
        outputs = re.split(re.escape(MARK) + r"(\d+|end)\n", done.stdout)
        printed = dict(zip(outputs[1::2], outputs[2::2]))
        if "end" not in printed:
            last = max((int(k) for k in printed if k != "end"), default=0)
            block = walk[last]
            raise AssertionError(
                f"README.md:{block.line}: the block failed (exit {done.returncode}):\n"
                f"{block.text}\nit printed:\n{printed.get(str(last), '')}\n{done.stderr[-3000:]}")
        show = os.environ.get("LEADSREFER_README_SHOW")
        problems = []
        for number, block in enumerate(walk):
            output = printed[str(number)].replace("\r", "").replace(address, "127.0.0.1:3000")
            output = "\n".join(l.rstrip() for l in output.rstrip("\n").split("\n"))
            if show:
                print(f"--- README.md:{block.line}\n{output}")
            if block.expected is not None:
                if not pattern(block.expected).match(output):
                    problems.append(f"README.md:{block.line}: the block printed\n{output}\n"
                                    f"where the README shows\n{block.expected}")
            elif '"error":{' in output:
                problems.append(f"README.md:{block.line}: an API error the README does not "
                                f"show:\n{output}")
        assert not problems, "\n\n".join(problems)
    finally:
        server.terminate()
        server.wait(timeout=60)
