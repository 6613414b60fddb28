"""
Log formats and levels of a real twistd stompd: --log-format json writes
one JSON object per line and nothing else; [logging] level drops what is
below it; connects and disconnects are one line each.
"""

import json

import pytest

from tests.support.clients import stomp_client

pytestmark = pytest.mark.integration


def disconnect(client) -> None:
    # stomp.py does not wait for its DISCONNECT's RECEIPT: without this, the
    # broker may stop before it has read the DISCONNECT.
    client.disconnect(receipt="bye")
    client.collector.wait_for_receipt("bye")


def test_json_log_lines_are_json_objects(tmp_path, broker_process):
    running = broker_process(tmp_path, "", args=("--log-format", "json"))
    client = stomp_client(running.port)
    disconnect(client)
    running.stop()
    lines = running.log.splitlines()
    assert lines
    events = [json.loads(line) for line in lines]
    assert all({"time", "level", "namespace", "message"} <= set(event) for event in events)
    (connected,) = [event for event in events if event["message"].startswith("CONNECTED ")]
    assert (connected["user"], connected["vhost"], connected["transport"]) == ("guest", "/", "tcp")
    assert connected["version"] == "1.2" and connected["peer"].startswith("127.0.0.1:")
    assert connected["level"] == "info"
    (disconnected,) = [event for event in events if event["message"].startswith("DISCONNECTED ")]
    assert disconnected["reason"] == "DISCONNECT"
    assert disconnected["frames"] == 2
    assert disconnected["session"] == connected["session"]


def test_log_level_drops_lower_levels(tmp_path, broker_process):
    running = broker_process(tmp_path, '[logging]\nlevel = "warn"\n')
    client = stomp_client(running.port)
    disconnect(client)
    running.stop()
    assert "CONNECTED" not in running.log
    assert "Configuration:" not in running.log
