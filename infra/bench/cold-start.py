#!/usr/bin/env python3
"""Cold and warm starts of the built `click` and `postback` Lambda functions, measured on this
machine against a fake Lambda Runtime API and the AWS emulator.

The fake runtime speaks the documented Runtime API (`GET /2018-06-01/runtime/invocation/next`,
`POST /2018-06-01/runtime/invocation/{id}/response` and `/error`, `POST .../init/error`). The
function's `bootstrap` runs as Lambda would start it, with its environment, against moto:

- init: from the process's start to its first `next` (building the SDK clients and the app);
- first invocation: from the first event handed over to its response (the first DynamoDB
  calls open their connections);
- warm: the next invocations, each a new visitor (or a new order), p50, p99 and max.

The emulator answers slower than DynamoDB, and the same for both phases: compare builds with
this script, not these numbers with AWS's.

Usage (from the repository root, after `infra/sam-build` and a `cargo test` that built the
runner with the `aws` feature):
    .venv/bin/python infra/bench/cold-start.py [--warm 200] [--functions click,postback]
Needs: .venv with moto (infra/test installs it), .aws-sam/build/<Function>/bootstrap,
target/debug/leadsrefer (or LEADSREFER_BINARY) built with the aws feature.
"""

import argparse
import http.server
import json
import os
import pathlib
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
RUNNER = pathlib.Path(os.environ.get("LEADSREFER_BINARY", ROOT / "target/debug/leadsrefer"))
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
FUNCTIONS = {"click": "ClickFunction", "postback": "PostbackFunction"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fail(message):
    sys.exit(f"cold-start: {message}")


class Runtime:
    """A fake Lambda Runtime API: hands out queued events, records when each was taken and
    answered, and when the function first asked for one (the end of its init)."""

    def __init__(self):
        self.lock = threading.Condition()
        self.queue = []
        self.first_next = None
        self.taken = {}
        self.answered = {}
        self.errors = []
        runtime = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def reply(self, status, body=b"", headers=()):
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path != "/2018-06-01/runtime/invocation/next":
                    return self.reply(404)
                with runtime.lock:
                    if runtime.first_next is None:
                        runtime.first_next = time.perf_counter()
                        runtime.lock.notify_all()
                    while not runtime.queue:
                        runtime.lock.wait()
                    request_id, event = runtime.queue.pop(0)
                    runtime.taken[request_id] = time.perf_counter()
                deadline = str(int(time.time() * 1000) + 30_000)
                self.reply(200, json.dumps(event).encode(), [
                    ("Content-Type", "application/json"),
                    ("Lambda-Runtime-Aws-Request-Id", request_id),
                    ("Lambda-Runtime-Deadline-Ms", deadline),
                    ("Lambda-Runtime-Invoked-Function-Arn",
                     "arn:aws:lambda:us-east-1:123456789012:function:bench"),
                    ("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000"),
                ])

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                match = re.fullmatch(r"/2018-06-01/runtime/invocation/([^/]+)/(response|error)", self.path)
                with runtime.lock:
                    if match:
                        runtime.answered[match.group(1)] = (time.perf_counter(), match.group(2), body)
                    else:
                        runtime.errors.append((self.path, body))
                    runtime.lock.notify_all()
                self.reply(202, b"{}", [("Content-Type", "application/json")])

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # the function killed while it waited for its next event

        self.server = Server(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def invoke(self, request_id, event, timeout=60):
        """Hands over one event; answers (seconds from taken to answered, the response)."""
        with self.lock:
            self.queue.append((request_id, event))
            self.lock.notify_all()
            end = time.time() + timeout
            while request_id not in self.answered:
                if self.errors or time.time() > end:
                    fail(f"no answer to {request_id}: {self.errors}")
                self.lock.wait(timeout=1)
            at, kind, body = self.answered[request_id]
            if kind != "response":
                fail(f"{request_id} failed: {body[:500]}")
            return at - self.taken[request_id], json.loads(body)

    def wait_for_init(self, since, timeout=60):
        with self.lock:
            end = time.time() + timeout
            while self.first_next is None:
                if self.errors or time.time() > end:
                    fail(f"the function did not start: {self.errors}")
                self.lock.wait(timeout=1)
            return self.first_next - since


def event(name, number, demo):
    """The function's sample event (events/), made about the demo's link or click."""
    sample = json.loads((ROOT / f"events/{name}.json").read_text())
    ip = f"198.51.{number // 250}.{number % 250 + 1}"
    sample["headers"]["x-forwarded-for"] = ip
    sample["requestContext"]["http"]["sourceIp"] = ip
    sample["requestContext"]["requestId"] = f"{name}-{number}"
    sample["requestContext"]["timeEpoch"] = int(time.time() * 1000)
    if name == "click":
        sample["headers"]["user-agent"] = BROWSER
        sample["rawPath"] = f"/c/{demo['link']}"
        sample["requestContext"]["http"]["path"] = sample["rawPath"]
        sample["pathParameters"] = {"link": demo["link"]}
    else:
        query = {"click_id": demo["click"], "txn_id": f"BENCH-{number}", "amount": "49.99",
                 "currency": "USD", "token": demo["token"]}
        sample["queryStringParameters"] = query
        sample["rawQueryString"] = "&".join(f"{k}={v}" for k, v in query.items())
    return sample


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warm", type=int, default=200, help="warm invocations per function")
    parser.add_argument("--functions", default="click,postback")
    args = parser.parse_args()
    if not RUNNER.exists():
        fail(f"{RUNNER} is missing: run cargo test (it builds the runner with the aws feature)")
    for name in args.functions.split(","):
        bootstrap = ROOT / ".aws-sam/build" / FUNCTIONS[name] / "bootstrap"
        if not bootstrap.exists():
            fail(f"{bootstrap} is missing: run infra/sam-build")

    moto_port = free_port()
    moto = subprocess.Popen([sys.executable, str(ROOT / "infra/moto_serial.py"), str(moto_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        endpoint = f"http://127.0.0.1:{moto_port}"
        for _ in range(300):
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=1)
                break
            except Exception:
                time.sleep(0.1)
        suffix = str(int(time.time()))
        env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing",
                   AWS_SECRET_ACCESS_KEY="testing", AWS_SESSION_TOKEN="testing",
                   AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1",
                   AWS_EC2_METADATA_DISABLED="true", LEADSREFER_TABLE=f"bench-{suffix}",
                   LEADSREFER_BUCKET=f"bench-{suffix}", LEADSREFER_S3_PATH_STYLE="true",
                   LEADSREFER_IP_HASH_KEY="11" * 32, LEADSREFER_MAIL_FROM="no-reply@leadsrefer.test",
                   LEADSREFER_PUBLIC_URL="https://track.leadsrefer.test", RUST_LOG="warn")
        made = subprocess.run([str(RUNNER), "provision", "--backend", "aws"], env=env,
                              capture_output=True, text=True)
        if made.returncode:
            fail(made.stderr)
        env["LEADSREFER_KMS_KEY_ID"] = re.search(r"LEADSREFER_KMS_KEY_ID=(\S+)", made.stdout).group(1)

        # The demo, seeded by the runner on the emulator's table; a click to post back on.
        serve = subprocess.Popen([str(RUNNER), "serve", "--backend", "aws", "--demo",
                                  "--no-demo-history", "--addr", "127.0.0.1:0"], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        banner = ""
        for line in serve.stdout:
            banner += line
            if line.startswith("Press Ctrl-C"):
                break
        link = re.search(r"tracking link: (\S+)", banner).group(1)
        token = re.search(r"token=([0-9a-f]{64})", banner).group(1)
        opener = urllib.request.build_opener(type("NoRedirect", (urllib.request.HTTPRedirectHandler,),
                                                  {"redirect_request": lambda *a, **k: None}))
        try:
            opener.open(urllib.request.Request(link, headers={"User-Agent": BROWSER}))
            fail("the tracking link did not redirect")
        except urllib.error.HTTPError as redirect:
            click = re.search(r"clickid=([0-9A-Z]{26})", redirect.headers["location"]).group(1)
        serve.terminate()
        serve.wait(timeout=30)
        demo = {"link": re.search(r"/c/([^?]+)", link).group(1), "token": token, "click": click}

        rows = []
        for name in args.functions.split(","):
            bootstrap = ROOT / ".aws-sam/build" / FUNCTIONS[name] / "bootstrap"
            runtime = Runtime()
            function_env = dict(env, AWS_LAMBDA_RUNTIME_API=runtime.address,
                                AWS_LAMBDA_FUNCTION_NAME=f"leadsrefer-bench-{name}",
                                AWS_LAMBDA_FUNCTION_MEMORY_SIZE="512",
                                AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
                                AWS_LAMBDA_LOG_GROUP_NAME=f"/aws/lambda/{name}",
                                AWS_LAMBDA_LOG_STREAM_NAME="bench", LAMBDA_TASK_ROOT=str(bootstrap.parent))
            log = tempfile.TemporaryFile()
            started = time.perf_counter()
            process = subprocess.Popen([str(bootstrap)], env=function_env, stdout=log, stderr=log)
            try:
                init = runtime.wait_for_init(started)
                first, answer = runtime.invoke(f"{name}-0", event(name, 0, demo))
                expected = 302 if name == "click" else 201
                if answer.get("statusCode") != expected:
                    fail(f"{name} answered {answer.get('statusCode')}: {answer.get('body', '')[:300]}")
                warm = []
                for number in range(1, args.warm + 1):
                    took, answer = runtime.invoke(f"{name}-{number}", event(name, number, demo))
                    if answer.get("statusCode") != expected:
                        fail(f"{name} invocation {number} answered {answer.get('statusCode')}")
                    warm.append(took)
            finally:
                process.kill()
                process.wait()
                runtime.server.shutdown()
            warm.sort()
            p99 = warm[max(0, int(len(warm) * 0.99) - 1)]
            size = bootstrap.stat().st_size
            rows.append(f"| {name} | {size / 1e6:.1f} MB | {init * 1000:.1f} | {first * 1000:.1f} | "
                        f"{statistics.median(warm) * 1000:.1f} | {p99 * 1000:.1f} | {warm[-1] * 1000:.1f} | {len(warm)} |")
        print("| function | bootstrap | init ms | first invocation ms | warm p50 ms | warm p99 ms | warm max ms | warm invocations |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        print("\n".join(rows))
    finally:
        moto.kill()
        moto.wait(timeout=30)


if __name__ == "__main__":
    main()
