"""What the dashboard's browser tests share: the real local runner on a free port with fresh
data, Debian's Chromium driven by Playwright, axe-core injected into every page, and
screenshots of every page at 390 and 1280 px wide under target/browser/.

Run through infra/test, which installs Playwright, Chromium and axe-core and builds the runner.
"""

import email
import email.policy
import http.client
import os
import pathlib
import re
import shutil
import subprocess
import tempfile
import urllib.parse

import pytest
from playwright.sync_api import sync_playwright

ROOT = pathlib.Path(__file__).resolve().parents[2]
RUNNER = pathlib.Path(os.environ.get("LEADSREFER_BINARY", ROOT / "target/debug/leadsrefer"))
CHROMIUM = os.environ.get("LEADSREFER_CHROMIUM", "/usr/bin/chromium")
AXE = pathlib.Path(os.environ.get("LEADSREFER_AXE", ROOT / ".venv/axe/node_modules/axe-core/axe.min.js"))
SHOTS = ROOT / "target/browser"
BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
WIDTHS = (1280, 390)


class Runner:
    """`leadsrefer serve` on a free port with an empty data folder, stopped at the end."""

    def __init__(self):
        assert RUNNER.exists(), f"{RUNNER} is missing: build it with cargo build -p leadsrefer"
        self.data = tempfile.mkdtemp(prefix="leadsrefer-browser-")
        # The affiliate's postback URL in the story is on loopback: allowed, as an operator would.
        env = dict(os.environ, LEADSREFER_PAYOUT_COOLING_OFF_HOURS="0", RUST_LOG="warn",
                   LEADSREFER_OUTBOUND_ALLOW_PRIVATE="true")
        self.process = subprocess.Popen(
            [str(RUNNER), "serve", "--addr", "127.0.0.1:0", "--data", self.data],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
        )
        self.banner = []
        for line in self.process.stdout:
            self.banner.append(line.rstrip("\n"))
            if line.startswith("Press Ctrl-C"):
                break
        text = "\n".join(self.banner)
        self.base = re.search(r"LeadsRefer is running at (\S+)", text).group(1)
        self.dashboard = re.search(r"Dashboard: (\S+)", text).group(1)
        self.passwords = dict(re.findall(r"^\s+(admin|advertiser|affiliate)\s+\S+ / (\S+)$", text, re.M))
        assert set(self.passwords) == {"admin", "advertiser", "affiliate"}, text

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)

    def mail_to(self, address):
        """The text bodies of every mail sent to `address`, oldest first."""
        bodies = []
        outbox = pathlib.Path(self.data, "outbox")
        for path in sorted(outbox.glob("*.eml")):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if address in str(message["To"]):
                bodies.append(message.get_body(("plain",)).get_content())
        return bodies

    def get(self, url, headers=None):
        """One request without following redirects: (status, headers, body)."""
        parts = urllib.parse.urlsplit(url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request("GET", path, headers={"User-Agent": BROWSER_UA, **(headers or {})})
        response = connection.getresponse()
        body = response.read()
        connection.close()
        return response.status, dict(response.getheaders()), body


class Visitor:
    """One person's browser: its own cookies, pages checked as they are opened."""

    def __init__(self, browser, runner, name, seen):
        # axe-core is injected as a script of its own: the pages' CSP allows only our script.
        self.context = browser.new_context(
            viewport={"width": 1280, "height": 900}, bypass_csp=True, user_agent=BROWSER_UA,
            timezone_id="America/New_York",
        )
        self.page = self.context.new_page()
        # The pages ask "Are you sure?" before destructive forms: a person says yes.
        self.page.on("dialog", lambda dialog: dialog.accept())
        self.runner = runner
        self.name = name
        self.seen = seen

    def open(self, path, status=200):
        response = self.page.goto(self.runner.base + path)
        assert response.status == status, f"{path}: {response.status}\n{self.page.content()[:2000]}"
        self.check(path)
        return response

    def check(self, label=None):
        """axe-core finds no serious or critical violation; the page fits 390 px; screenshots."""
        label = label or urllib.parse.urlsplit(self.page.url).path
        self.page.add_script_tag(path=str(AXE))
        violations = self.page.evaluate(
            """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
                .filter(v => v.impact === 'serious' || v.impact === 'critical')
                .map(v => `${v.id} (${v.impact}): ${v.help} at ${JSON.stringify(v.nodes.map(n => n.target))}`)"""
        )
        assert not violations, f"{label}: " + "\n".join(violations)
        label = re.sub(r"[0-9A-HJKMNP-TV-Z]{26}", "id", label)
        name = re.sub(r"[^a-z0-9]+", "-", f"{self.name}{label}".lower()).strip("-")
        SHOTS.mkdir(parents=True, exist_ok=True)
        for width in WIDTHS:
            self.page.set_viewport_size({"width": width, "height": 900})
            overflow = self.page.evaluate("document.documentElement.scrollWidth")
            assert overflow <= width, f"{label} scrolls sideways at {width} px ({overflow} px wide)"
            self.page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
        self.page.set_viewport_size({"width": 1280, "height": 900})
        self.seen.add(re.sub(r"/[0-9A-HJKMNP-TV-Z]{26}", "/{id}", urllib.parse.urlsplit(self.page.url).path))

    def sign_in(self, email_address, password):
        self.page.goto(self.runner.base + "/app/sign-in")
        self.page.fill("#f-email", email_address)
        self.page.fill("#f-password", password)
        self.page.click("form[action='/app/sign-in'] button[type=submit]")
        assert urllib.parse.urlsplit(self.page.url).path == "/app", self.page.url
        return self

    def submit(self, selector="main form button[type=submit]"):
        with self.page.expect_navigation():
            self.page.click(selector)

    def text(self, selector):
        return self.page.locator(selector).first.inner_text().strip()


@pytest.fixture(scope="session")
def runner():
    runner = Runner()
    yield runner
    runner.stop()


@pytest.fixture(scope="session")
def seen():
    shutil.rmtree(SHOTS, ignore_errors=True)
    return set()


@pytest.fixture(scope="session")
def browser():
    assert AXE.exists(), f"{AXE} is missing: infra/test installs axe-core"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        yield browser
        browser.close()


@pytest.fixture
def visitor(browser, runner, seen):
    contexts = []

    def make(name):
        person = Visitor(browser, runner, name, seen)
        contexts.append(person.context)
        return person

    yield make
    for context in contexts:
        context.close()
