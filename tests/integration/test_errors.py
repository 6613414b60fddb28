"""
Protocol errors: each gets an ERROR frame with a C{message} header and a
body, the connection is closed, and the broker goes on serving everyone
else.
"""

import time

import pytest


def test_frame_before_connect(raw, expect_error, assert_serving):
    client = raw()
    client.send_frame("SEND", {"destination": "/queue/early"}, b"too soon")
    expect_error(client, "not connected")
    assert_serving()


def test_unknown_command_before_connect(raw, expect_error, assert_serving):
    client = raw()
    client.send_frame("HELLO")
    expect_error(client)
    assert_serving()


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_unknown_command(raw, expect_error, assert_serving, version):
    client = raw()
    client.connect(version)
    client.send_frame("PUBLISH", {"destination": "/queue/a"}, b"x")
    error = expect_error(client, "unknown command")
    assert b"PUBLISH" in error.body
    assert_serving()


@pytest.mark.parametrize(
    "version, command, headers, missing",
    [
        ("1.2", "SEND", {}, "destination"),
        ("1.0", "SEND", {}, "destination"),
        ("1.2", "SUBSCRIBE", {"id": "0"}, "destination"),
        ("1.1", "SUBSCRIBE", {"destination": "/queue/a"}, "id"),
        ("1.2", "SUBSCRIBE", {"destination": "/queue/a"}, "id"),
        ("1.2", "UNSUBSCRIBE", {}, "id"),
        ("1.2", "ACK", {"subscription": "0"}, "id"),
        ("1.2", "NACK", {"subscription": "0"}, "id"),
        ("1.1", "ACK", {"subscription": "0"}, "message-id"),
        ("1.2", "BEGIN", {}, "transaction"),
        ("1.2", "COMMIT", {}, "transaction"),
        ("1.2", "ABORT", {}, "transaction"),
    ],
)
def test_missing_required_header(raw, expect_error, assert_serving, version, command, headers, missing):
    client = raw()
    client.connect(version)
    client.send_frame(command, headers)
    error = expect_error(client, missing)
    assert "receipt-id" not in error.headers
    assert_serving()


def test_subscribe_without_id_is_fine_in_stomp_10(raw):
    client = raw()
    client.connect(None)
    client.send_frame("SUBSCRIBE", {"destination": "/topic/ten", "receipt": "s"})
    assert client.read_frame().command == "RECEIPT"
    client.send_frame("SEND", {"destination": "/topic/ten"}, b"hi")
    message = client.read_frame()
    assert message.command == "MESSAGE"
    assert message.body == b"hi"
    client.send_frame("UNSUBSCRIBE", {"destination": "/topic/ten", "receipt": "u"})
    assert client.read_frame().command == "RECEIPT"


def test_failing_frame_with_receipt_gets_error_with_receipt_id(raw, expect_error, assert_serving):
    client = raw()
    client.connect("1.2")
    client.send_frame("SEND", {"receipt": "message-12345"}, b"no destination")
    error = expect_error(client, "destination")
    assert error.headers["receipt-id"] == "message-12345"
    assert_serving()


@pytest.mark.parametrize("command", ["SEND", "SUBSCRIBE"])
@pytest.mark.parametrize("destination", ["/foo/bar", "/topic/", "/queue/", "queue/a", "/reply-queue/x"])
def test_unknown_destination(raw, expect_error, assert_serving, command, destination):
    client = raw()
    client.connect("1.2")
    client.send_frame(command, {"destination": destination, "id": "0", "receipt": "r"}, b"x")
    error = expect_error(client, "destination")
    assert error.headers["receipt-id"] == "r"
    assert_serving()


@pytest.mark.parametrize(
    "frames, message",
    [
        ([("COMMIT", {"transaction": "t1"})], "transaction"),
        ([("BEGIN", {"transaction": "t1"}), ("BEGIN", {"transaction": "t1"})], "transaction"),
        ([("UNSUBSCRIBE", {"id": "never"})], "subscription"),
        ([("ACK", {"id": "no-such-message"})], "message"),
        ([("SUBSCRIBE", {"id": "0", "destination": "/queue/a", "ack": "sometimes"})], "ack"),
        (
            [("SUBSCRIBE", {"id": "0", "destination": "/topic/a"}), ("SUBSCRIBE", {"id": "0", "destination": "/topic/b"})],
            "subscription",
        ),
    ],
)
def test_state_errors(raw, expect_error, assert_serving, frames, message):
    client = raw()
    client.connect("1.2")
    for command, headers in frames:
        client.send_frame(command, headers)
    expect_error(client, message)
    assert_serving()


def test_invalid_heart_beat_header(raw, expect_error, assert_serving):
    client = raw()
    client.send_frame(
        "CONNECT",
        {"accept-version": "1.2", "host": "localhost", "login": "guest", "passcode": "guest", "heart-beat": "soon"},
    )
    expect_error(client, "heart-beat")
    assert_serving()


def test_stomp_py_sees_the_error_and_the_disconnect(connect, assert_serving):
    conn = connect()
    conn.send_frame("BEGIN", {})
    assert conn.collector.wait_for(lambda: conn.collector.errors)
    error = conn.collector.errors[0]
    assert "transaction" in error.headers["message"]
    assert error.body
    assert conn.collector.wait_for(lambda: conn.collector.disconnected)
    assert_serving()


def test_error_does_not_disturb_other_subscribers(connect, raw, expect_error):
    listener = connect()
    listener.subscribe("/topic/bystander", id="0", receipt="sub")
    assert listener.collector.wait_for(lambda: "sub" in listener.collector.receipts)
    for n in range(5):
        client = raw()
        client.connect("1.2")
        client.send_frame("SEND", {"destination": "/topic/bystander"}, f"ok {n}".encode())
        client.send_frame("NOPE")
        expect_error(client, "unknown command")
    assert listener.collector.wait_for(lambda: len(listener.collector.messages) == 5)
    assert sorted(m.body for m in listener.collector.messages) == [f"ok {n}" for n in range(5)]
    assert listener.is_connected()


def test_client_that_never_connects_is_dropped(tmp_path, broker_process, raw, expect_error):
    running = broker_process(tmp_path, "connect-timeout = 0.5\n")
    try:
        started = time.monotonic()
        silent = raw(running.port)
        expect_error(silent, "timeout")
        assert 0.4 <= time.monotonic() - started <= 3
        # A heart-beat EOL is not a CONNECT either.
        beating = raw(running.port)
        beating.send(b"\n")
        expect_error(beating, "timeout")
        # Clients that do connect in time are not affected.
        prompt = raw(running.port)
        assert prompt.connect("1.2").command == "CONNECTED"
        time.sleep(0.7)
        prompt.send_frame("SEND", {"destination": "/queue/prompt", "receipt": "r"})
        assert prompt.read_frame().command == "RECEIPT"
    finally:
        assert running.stop() == 0
