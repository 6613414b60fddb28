"""
The built-in page in a real browser: headless Chromium, driven by
C{tests/js/browser.mjs} (playwright-core), talks STOMP over WebSocket to
the installed broker while stomp.py talks to the same broker over TCP.

The test also takes a screenshot of the page; with C{UPDATE_SCREENSHOT=1}
in the environment it writes it to C{docs/images/page.png}, the README's
picture (C{make screenshot}). Without C{/usr/bin/chromium} it is skipped,
except under CI (the C{CI} environment variable is set), where it fails: CI
must prove the browser path.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.driver import ScriptDriver

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "js" / "browser.mjs"
CHROMIUM = Path("/usr/bin/chromium")
README_SCREENSHOT = ROOT / "docs" / "images" / "page.png"

# Per command. The script's own waits are 10 s each; the first answer also
# waits for the browser to start and load the page.
COMMAND_TIMEOUT = 30.0


def require_browser() -> None:
    """
    Skip without Chromium outside CI; under CI, fail instead.
    """
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the browser test")
        pytest.skip(reason)
    node = shutil.which("node")
    assert node, "node is missing (Node.js 20 or later)"
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    assert int(version.lstrip("v").split(".")[0]) >= 20, f"node {version}: playwright-core needs 20 or later"
    assert (ROOT / "node_modules" / "playwright-core").is_dir(), "node_modules is missing: run make assets"


def drive_page(page_url: str, log_path: Path) -> ScriptDriver:
    """
    The page's driver script, on C{page_url}.
    """
    return ScriptDriver(SCRIPT, [page_url], log_path, COMMAND_TIMEOUT)


@pytest.fixture
def browser(broker, tmp_path):
    """
    Chromium with the built-in page of the module's broker open.
    """
    require_browser()
    running = drive_page(f"http://127.0.0.1:{broker.ws_port}/", tmp_path / "browser.log")
    yield running
    running.close()


def test_page_and_tcp_client_exchange_messages(browser, connect, subscribe, unique, tmp_path):
    topic = unique("/topic/chat.")

    # Only Connect is clicked: the defaults are guest/guest on ws://HOST/ws.
    assert browser("connect")["status"] == "connected, STOMP 1.2"
    browser("subscribe", destination=topic)
    # The page's own message coming back proves the subscription is in
    # place (one connection's frames are handled in order) before stomp.py
    # publishes.
    browser("send", destination=topic, body="hello from the page")
    browser("expect", destination=topic, body="hello from the page")

    # TCP to the page.
    publisher = connect()
    publisher.send(topic, "hello from stomp.py")
    publisher.send(topic, "grüße, ✓ <b>not bold</b>")
    shown = browser("expect", destination=topic, body="grüße, ✓ <b>not bold</b>")["messages"]
    assert shown == [
        {"destination": topic, "body": "hello from the page"},
        {"destination": topic, "body": "hello from stomp.py"},
        {"destination": topic, "body": "grüße, ✓ <b>not bold</b>"},
    ]

    # The page to TCP.
    queue_name = unique("/queue/orders.")
    subscriber = connect()
    subscribe(subscriber, queue_name)
    browser("send", destination=queue_name, body="order 42 ✓")
    assert subscriber.collector.wait_for(lambda: subscriber.collector.messages)
    message = subscriber.collector.messages[0]
    assert message.headers["destination"] == queue_name
    assert message.body == "order 42 ✓"

    screenshot = README_SCREENSHOT if os.environ.get("UPDATE_SCREENSHOT") else tmp_path / "page.png"
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    browser("screenshot", path=str(screenshot))
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
