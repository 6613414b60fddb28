"""
Heart-beats in both directions against the module broker, whose floors are
100 ms each way with a grace factor of 3.
"""

import time

import pytest


def test_broker_beats_at_the_negotiated_interval(raw):
    client = raw()
    connected = client.connect("1.2", heart_beat="0,500")
    assert connected.command == "CONNECTED"
    assert connected.headers["heart-beat"] == "100,100"
    # Nothing but beats arrives: read until the deadline passes.
    assert client.read_frame(timeout=2.2) is None
    assert not client.eof
    # One beat each 500 ms: 4 in 2.2 s, give or take scheduling.
    assert 3 <= client.beats <= 5, client.beats


def test_broker_never_beats_faster_than_its_floor(raw):
    client = raw()
    client.connect("1.2", heart_beat="0,10")
    assert client.read_frame(timeout=1.05) is None
    # The floor is 100 ms: at most about 10 beats in a second, never 100.
    assert 6 <= client.beats <= 12, client.beats


def test_no_beats_unless_asked_for(raw):
    client = raw()
    client.connect("1.2", heart_beat="0,0")
    assert client.read_frame(timeout=0.6) is None
    assert client.beats == 0
    assert not client.eof


def test_silent_client_is_disconnected_after_interval_times_grace(raw, expect_error, assert_serving):
    client = raw()
    started = time.monotonic()
    client.connect("1.2", heart_beat="100,0")
    # It promised a beat every max(100, 100) ms and sends none: after
    # 100 ms * 3.0 grace the broker gives up on it.
    expect_error(client, "heart-beat", timeout=3.0)
    elapsed = time.monotonic() - started
    assert 0.25 <= elapsed <= 2.0, elapsed
    assert_serving()


def test_client_that_beats_stays_connected(raw):
    client = raw()
    client.connect("1.2", heart_beat="100,0")
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        client.send(b"\n")
        time.sleep(0.1)
    client.send_frame("SUBSCRIBE", {"id": "0", "destination": "/topic/beating", "receipt": "r"})
    receipt = client.read_frame()
    assert receipt is not None and receipt.command == "RECEIPT"


def test_frames_count_as_beats(raw):
    client = raw()
    client.connect("1.2", heart_beat="100,0")
    for n in range(10):
        client.send_frame("SEND", {"destination": "/topic/beats-as-frames", "receipt": str(n)})
        receipt = client.read_frame()
        assert receipt is not None and receipt.command == "RECEIPT", receipt
        time.sleep(0.1)


@pytest.mark.parametrize("version, idle", [("1.1", 1.0), ("1.2", 2.0)])
def test_stomp_py_with_heart_beats_stays_connected_while_idle(connect, version, idle):
    conn = connect(version=version, heartbeats=(200, 200))
    time.sleep(idle)
    assert conn.is_connected()
    assert not conn.collector.errors
    assert not conn.collector.disconnected
    conn.subscribe("/topic/idle-beats", id="0", receipt="sub")
    assert conn.collector.wait_for(lambda: "sub" in conn.collector.receipts)
    conn.send("/topic/idle-beats", "after the pause")
    assert conn.collector.wait_for(lambda: conn.collector.messages)
    assert conn.collector.messages[0].body == "after the pause"


def test_stomp_10_has_no_heart_beats(raw):
    client = raw()
    # A 1.0 CONNECT's heart-beat header means nothing.
    connected = client.connect(None, heart_beat="100,100")
    assert connected.headers["version"] == "1.0"
    assert client.read_frame(timeout=0.8) is None
    assert client.beats == 0
    assert not client.eof
