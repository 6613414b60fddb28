"""
CONNECT and STOMP: version negotiation, the CONNECTED frame, the host header.
"""

import pytest


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_stomp_py_gets_the_version_it_speaks(connect, version):
    conn = connect(version=version)
    assert conn.is_connected()
    (connected,) = conn.collector.connected
    assert connected.headers["version"] == version


@pytest.mark.parametrize(
    "accept_version, expected",
    [
        (None, "1.0"),
        ("1.0", "1.0"),
        ("1.1", "1.1"),
        ("1.0,1.1", "1.1"),
        ("1.1,1.2", "1.2"),
        ("1.0,1.1,1.2", "1.2"),
        ("1.2,2.0", "1.2"),
    ],
)
def test_highest_common_version_is_chosen(raw, accept_version, expected):
    client = raw()
    headers = {"accept-version": accept_version} if accept_version else {}
    client.send_frame("CONNECT", {"login": "guest", "passcode": "guest", **headers})
    frame = client.read_frame()
    assert frame.command == "CONNECTED", frame
    assert frame.headers["version"] == expected


def test_unsupported_version_is_refused_with_the_supported_ones(raw, expect_error, assert_serving):
    client = raw()
    client.send_frame("CONNECT", {"accept-version": "2.0", "host": "localhost", "login": "guest", "passcode": "guest"})
    error = expect_error(client, "version")
    assert error.headers["version"].split(",") == ["1.0", "1.1", "1.2"]
    assert b"2.0" in error.body
    assert_serving()


def test_stomp_command_works_like_connect(raw):
    client = raw()
    connected = client.connect("1.2", command="STOMP")
    assert connected.command == "CONNECTED"
    assert connected.headers["version"] == "1.2"
    client.send_frame("DISCONNECT", {"receipt": "bye"})
    receipt = client.read_frame()
    assert receipt.command == "RECEIPT"
    assert receipt.headers["receipt-id"] == "bye"
    assert client.is_closed()


def test_connected_frame_describes_the_session(raw):
    sessions = set()
    for _ in range(2):
        connected = raw().connect("1.2", heart_beat="0,0")
        assert connected.command == "CONNECTED"
        assert connected.headers["version"] == "1.2"
        sends, receives = connected.headers["heart-beat"].split(",")
        assert sends.isdigit() and receives.isdigit()
        assert connected.headers["server"].startswith("stompd/")
        assert connected.headers["session"]
        sessions.add(connected.headers["session"])
    assert len(sessions) == 2, "each connection gets its own session id"


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "whatever", "/", "", None])
def test_host_header_is_never_rejected(raw, host):
    client = raw()
    headers = {"accept-version": "1.2", "login": "guest", "passcode": "guest"}
    if host is not None:
        headers["host"] = host
    client.send_frame("CONNECT", headers)
    assert client.read_frame().command == "CONNECTED"
    # and the session is usable
    client.send_frame("SUBSCRIBE", {"id": "0", "destination": "/topic/host-check", "receipt": "r"})
    receipt = client.read_frame()
    assert receipt.command == "RECEIPT" and receipt.headers["receipt-id"] == "r"


def test_second_connect_is_an_error(raw, expect_error):
    client = raw()
    assert client.connect("1.2").command == "CONNECTED"
    client.send_frame("CONNECT", {"accept-version": "1.2", "host": "localhost", "login": "guest", "passcode": "guest"})
    expect_error(client, "already connected")


def test_disconnect_with_receipt_closes_after_the_receipt(connect, raw):
    client = raw()
    client.connect("1.1")
    client.send_frame("DISCONNECT", {"receipt": "77"})
    receipt = client.read_frame()
    assert receipt.command == "RECEIPT"
    assert receipt.headers["receipt-id"] == "77"
    assert client.is_closed()
