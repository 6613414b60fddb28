"""
The management console in headless Chromium (driven by
C{tests/js/console.mjs}): log in, watch a queue fill, purge it, see a
topic, close a connection; and a screenshot, C{docs/images/console.png} with
C{UPDATE_SCREENSHOT=1}.
"""

import os
from pathlib import Path

import pytest

from tests.integration.test_auth import admin
from tests.integration.test_browser import require_browser
from tests.support.broker import free_port
from tests.support.clients import subscribe_with_receipt
from tests.support.driver import ScriptDriver

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "js" / "console.mjs"
SCREENSHOT = ROOT / "docs" / "images" / "console.png"


def test_log_in_watch_a_queue_purge_it_and_close_a_connection(tmp_path, broker_process, clients, unique):
    require_browser()
    users = tmp_path / "users"
    assert admin("--users-file", str(users), "user", "add", "ops", "--groups", "admin", input="secret\n").returncode == 0
    port = free_port()
    running = broker_process(
        tmp_path, f'[auth]\nusers-file = "{users}"\n[management]\nlisten = ["tcp:{port}:interface=127.0.0.1"]\n'
    )
    console = ScriptDriver(SCRIPT, [f"http://127.0.0.1:{port}/"], tmp_path / "console.log")
    try:
        console("login", user="ops", password="secret")
        name = unique("/queue/console.")
        producer = clients(running.port)
        for n in range(5):
            producer.send(name, f"job {n}", headers={"receipt": f"r{n}"})
        producer.collector.wait_for_receipt("r4")
        console("ready", queue=name, count=5)
        console("purge", queue=name)
        console("ready", queue=name, count=0)
        # A dead letter, moved back to its queue from the console.
        worker = clients(running.port)
        subscribe_with_receipt(worker, name, id="w", ack="client-individual")
        producer.send(name, "poison", headers={"receipt": "p"})
        worker.collector.wait_for_bodies(1)
        worker.nack(worker.collector.messages[0].headers["ack"], requeue="false", receipt="n")
        worker.collector.wait_for_receipt("n")
        console("ready", queue=name + ".DLQ", count=1)
        console("move", queue=name + ".DLQ")
        assert worker.collector.wait_for_bodies(2) == ["poison", "poison"]
        # A topic with a subscriber is listed with it.
        topic = unique("/topic/console.")
        subscribe_with_receipt(worker, topic, id="t")
        producer.send(topic, "tick", headers={"receipt": "t"})
        producer.collector.wait_for_receipt("t")
        console("topic", topic=topic, consumers=1)
        session = producer.collector.connected[0].headers["session"]
        console("connection", session=session)
        screenshot = SCREENSHOT if os.environ.get("UPDATE_SCREENSHOT") else tmp_path / "console.png"
        console("screenshot", path=str(screenshot))
        assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        console("close", session=session)
        assert producer.collector.wait_for(lambda: producer.collector.errors)
        assert producer.collector.errors[0].headers["message"] == "closed by an administrator"
    finally:
        console.close()
        running.stop()
    assert "Traceback" not in running.log
