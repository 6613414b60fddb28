"""
The WebSocket transport's pure parts: subprotocol choice, origin patterns,
and the pipe a session writes to.
"""

import pytest
from autobahn.websocket.protocol import WebSocketProtocol
from autobahn.websocket.types import ConnectionDeny
from zope.interface.verify import verifyObject

from stompd.interfaces import ISessionTransport
from stompd.transport.websocket import WebSocketPipe, choose_subprotocol, frame_header, origin_matcher


@pytest.mark.parametrize(
    "offered, chosen",
    [
        (["v10.stomp", "v12.stomp", "v11.stomp"], "v12.stomp"),
        (["v11.stomp", "v10.stomp"], "v11.stomp"),
        (["mqtt", "stomp"], "stomp"),
        ([], None),
    ],
)
def test_highest_stomp_subprotocol(offered, chosen):
    assert choose_subprotocol(offered) == chosen


def test_only_foreign_subprotocols_are_refused():
    with pytest.raises(ConnectionDeny):
        choose_subprotocol(["mqtt", "wamp.2.json"])


def test_origin_patterns():
    allowed = origin_matcher(("https://app.example.com", "http://*.example.org", "http://localhost:*"))
    assert allowed("https://app.example.com")
    assert allowed("https://APP.example.com:443")
    assert allowed("http://a.example.org")
    assert allowed("http://localhost:8080")
    assert allowed("")
    assert not allowed("https://app.example.com.evil.net")
    assert not allowed("http://app.example.com")
    assert not allowed("http://a.b/.example.org")
    assert origin_matcher(("*",))("https://anything.example")


class FakeTransport:
    producer = None

    def __init__(self):
        self.calls = []

    def registerProducer(self, producer, streaming):
        self.calls.append(("register", producer))
        self.producer = producer

    def unregisterProducer(self):
        self.calls.append(("unregister", self.producer))
        self.producer = None


class FakeProtocol:
    """
    Autobahn's protocol as the pipe sees it: closing, so that the pipe
    leaves messages to Autobahn's sendMessage.
    """

    state = WebSocketProtocol.STATE_CLOSING
    _perMessageCompress = None
    autoFragmentSize = 0

    def __init__(self):
        self.transport = FakeTransport()
        self.sent = []

    def sendMessage(self, payload, isBinary):
        self.sent.append((payload, isBinary))


def test_pipe_sends_text_unless_not_utf8():
    protocol = FakeProtocol()
    pipe = WebSocketPipe(protocol)
    assert verifyObject(ISessionTransport, pipe)
    pipe.write(b"MESSAGE\n\nplain\x00")
    pipe.write("MESSAGE\n\ngrüße\x00".encode())
    pipe.write(b"MESSAGE\ncontent-length:2\n\n\xff\xfe\x00")
    assert [binary for _, binary in protocol.sent] == [False, False, True]


def test_a_sequence_is_one_message():
    protocol = FakeProtocol()
    WebSocketPipe(protocol).writeSequence([b"MESSAGE\ncontent-length:3\n\n", b"big", b"\x00"])
    assert protocol.sent == [(b"MESSAGE\ncontent-length:3\n\nbig\x00", False)]


def test_frame_headers_for_each_length_encoding():
    assert frame_header(1, 5) == b"\x81\x05"
    assert frame_header(2, 125) == b"\x82\x7d"
    assert frame_header(1, 126) == b"\x81\x7e\x00\x7e"
    assert frame_header(1, 65535) == b"\x81\x7e\xff\xff"
    assert frame_header(2, 65536) == b"\x82\x7f" + (65536).to_bytes(8, "big")


def test_pipe_takes_over_from_the_http_channel():
    protocol = FakeProtocol()
    channel, session = object(), object()
    protocol.transport.producer = channel
    WebSocketPipe(protocol).registerProducer(session, True)
    assert protocol.transport.calls == [("unregister", channel), ("register", session)]


def test_a_burst_of_frames_is_one_write_of_one_message_each():
    class OpenProtocol(FakeProtocol):
        state = WebSocketProtocol.STATE_OPEN

    protocol = OpenProtocol()
    written = []
    protocol.transport.write = written.append
    frames = [b"MESSAGE\n\nfirst\x00", "MESSAGE\n\ngrüße\x00".encode(), b"MESSAGE\ncontent-length:1\n\n\xff\x00"]
    WebSocketPipe(protocol).write_frames(frames)
    [data] = written
    # Each frame a final frame of its own: text when UTF-8, else binary.
    expected = b"".join(frame_header(opcode, len(frame)) + frame for opcode, frame in zip((1, 1, 2), frames))
    assert data == expected
    assert protocol.sent == []


def test_a_burst_goes_through_autobahn_when_it_frames():
    protocol = FakeProtocol()
    WebSocketPipe(protocol).write_frames([b"MESSAGE\n\na\x00", b"MESSAGE\n\nb\x00"])
    assert protocol.sent == [(b"MESSAGE\n\na\x00", False), (b"MESSAGE\n\nb\x00", False)]
