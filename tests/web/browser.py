"""Headless Chromium (Debian's chromium + chromedriver, through selenium) serving web/dist on 127.0.0.1: what the
web app's tests and the browser race share."""

import base64
import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service


ROOT = Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python3 -m http.server -d ROOT` (what the README tells a user to run; on its default port 8000 when `port` is
    None, as written there), stoppable to go offline."""

    def __init__(self, root, port=None):
        self.root, self.port, self.argv = root, port or 8000, ["-m", "http.server", "-d", str(root)] + ([str(port)] if port else [])
        self.proc = None

    def start(self):
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.1):
            raise RuntimeError(f"port {self.port} is already in use")
        self.proc = subprocess.Popen([sys.executable, *self.argv], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.1):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"http.server did not start on port {self.port}")

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/"


def chromium(width=360, height=740):
    """Headless Chromium with a fresh profile and no background connections (the machine has no network)."""
    profile = tempfile.mkdtemp(prefix="snakeid-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-dev-shm-usage",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              f"--user-data-dir={profile}", f"--window-size={width},{height}"]:
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=opts)
    driver.set_script_timeout(300)
    # The layout viewport of a 360x740 phone, whatever the headless window's frame.
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": True})
    return driver


def version(driver):
    return driver.capabilities.get("browserVersion", "?")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# JS helper, defined in the page: base64 to Uint8Array.
BYTES_JS = "const bytes = Uint8Array.from(atob(arguments[0]), c => c.charCodeAt(0));"


def wait_ready(driver, timeout=120):
    """Waits for globalThis.snakeidReady (defined once the page's module has run)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = driver.execute_async_script("""
            const done = arguments[arguments.length - 1];
            if (!globalThis.snakeidReady) return done('not yet');
            globalThis.snakeidReady.then(() => done('ready'), e => done('failed: ' + e.message));""")
        if r == "ready":
            return
        if r.startswith("failed"):
            raise AssertionError(f"the model did not load: {r}")
        time.sleep(0.2)
    raise AssertionError("snakeidReady did not resolve")


def identify(driver, data: bytes, country, top_k=5):
    """globalThis.snakeidIdentify in the page: {'ok': answer} or {'error': {kind, message}}."""
    return driver.execute_async_script(BYTES_JS + """
        const done = arguments[arguments.length - 1];
        globalThis.snakeidIdentify(bytes, arguments[1], arguments[2])
            .then(a => done({ok: a}), e => done({error: {kind: e.kind, message: e.message}}));""", b64(data), country, top_k)
