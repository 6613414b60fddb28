"""
STOMP over WebSocket, with Autobahn.

Each WebSocket connection carries one STOMP session, the same session class
TCP uses: messages in are bytes for the session's parser (one or several
frames per message, or part of one), and everything the session writes goes
out as one message. No STOMP logic lives here.

We use our own protocol rather than Autobahn's wrapping factory, which fails
a connection whose message type (text or binary) does not match the
negotiated subprotocol; browser clients send text under C{v12.stomp}.
"""

import re
import struct

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.protocol import WebSocketProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet import tcp
from zope.interface import implementer

from stompd.interfaces import ISessionTransport
from stompd.session import StompSession
from stompd.transport.tcp import SendingServer

# Highest version first: the one we pick when a client offers several.
SUBPROTOCOLS = ("v12.stomp", "v11.stomp", "v10.stomp", "stomp")


def choose_subprotocol(offered: list[str]) -> str | None:
    """
    The subprotocol to answer a client offering C{offered}: the highest
    STOMP one, or C{None} when it offers none (the STOMP version then comes
    from CONNECT's C{accept-version}).

    @raise ConnectionDeny: if it offers only subprotocols that are not STOMP.
    """
    for name in SUBPROTOCOLS:
        if name in offered:
            return name
    if offered:
        raise ConnectionDeny(
            ConnectionDeny.NOT_ACCEPTABLE,
            f"offered subprotocols {', '.join(offered)}; this server speaks {', '.join(SUBPROTOCOLS)}",
        )
    return None


_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _without_default_port(origin: str) -> str:
    """
    C{origin} lower-cased, without the port its scheme implies: browsers
    leave it out (C{https://app.example.com}), and so do people listing
    their sites.
    """
    origin = origin.strip().lower()
    scheme, _, rest = origin.partition("://")
    default = _DEFAULT_PORTS.get(scheme)
    if default is not None and rest.endswith(":" + default):
        return origin[: -len(default) - 1]
    return origin


def origin_matcher(allowed: tuple[str, ...]):
    """
    A predicate on a handshake's C{Origin} header (C{""} when there is
    none) for the C{allowed-origins} patterns, where C{*} alone allows any
    origin and elsewhere stands for part of a host name or a port.

    A handshake without C{Origin} comes from a client that is not a
    browser, which the header cannot protect, and is allowed.
    """
    if "*" in allowed:
        return lambda origin: True
    patterns = [
        re.compile("".join("[^/:]*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", pattern)))
        for pattern in map(_without_default_port, allowed)
    ]

    def is_allowed(origin: str) -> bool:
        if not origin:
            return True
        origin = _without_default_port(origin)
        return any(pattern.fullmatch(origin) for pattern in patterns)

    return is_allowed


_TEXT, _BINARY = 1, 2


def frame_header(opcode: int, length: int) -> bytes:
    """
    The header of an unfragmented, unmasked WebSocket frame (what a server
    sends, RFC 6455 section 5.2) carrying C{length} payload bytes.
    """
    if length < 126:
        return bytes((0x80 | opcode, length))
    if length < 65536:
        return struct.pack("!BBH", 0x80 | opcode, 126, length)
    return struct.pack("!BBQ", 0x80 | opcode, 127, length)


def _opcode(parts) -> int:
    """
    Text when every part is UTF-8 (what browser clients expect); binary for
    bodies that are not, which a text message cannot carry. Parts split at
    line or body boundaries, so no character straddles two.
    """
    for part in parts:
        if not part.isascii():
            try:
                part.decode("utf-8")
            except UnicodeDecodeError:
                return _BINARY
    return _TEXT


def _frame_opcode(frame: bytes) -> int:
    # Most frames are ASCII: one C call decides those.
    return _TEXT if frame.isascii() else _opcode((frame,))


@implementer(ISessionTransport)
class WebSocketPipe:
    """
    Presents a WebSocket connection to a session as a byte pipe with flow
    control: writes become messages, and producer registration and pausing
    go to the TCP (or TLS) transport underneath.
    """

    def __init__(self, protocol: "StompWebSocketProtocol") -> None:
        self._protocol = protocol

    def _framed_here(self) -> bool:
        """
        Can a message be framed here rather than by Autobahn? When the
        connection is open and nothing transforms messages (no compression
        extension, no fragmenting), a frame is a header and the bytes as
        they are: written by us, it skips Autobahn's per-message work,
        which costs more than the rest of a topic delivery.
        """
        protocol = self._protocol
        return (
            protocol.state == WebSocketProtocol.STATE_OPEN
            and protocol._perMessageCompress is None
            and not protocol.autoFragmentSize
        )

    def write(self, data: bytes) -> None:
        opcode = _frame_opcode(data)
        if self._framed_here():
            self._protocol.transport.write(frame_header(opcode, len(data)) + data)
        else:
            self._protocol.sendMessage(data, isBinary=opcode == _BINARY)

    def write_frames(self, frames: list[bytes]) -> None:
        """
        One message per frame, written to the connection together: one
        write for a burst's frames instead of one each. See
        L{ISessionTransport}.
        """
        if not self._framed_here():
            for frame in frames:
                self.write(frame)
            return
        parts = []
        for frame in frames:
            parts.append(frame_header(_frame_opcode(frame), len(frame)))
            parts.append(frame)
        transport = self._protocol.transport
        if isinstance(transport, SendingServer):
            # Sent at once, as over plain TCP (see L{SendingServer}).
            transport.write_frames([b"".join(parts)])
        else:
            transport.write(b"".join(parts))

    def writeSequence(self, data) -> None:
        # One message, its parts not joined (a large body stays as it is).
        opcode = _opcode(data)
        if self._framed_here():
            self._protocol.transport.writeSequence([frame_header(opcode, sum(map(len, data))), *data])
        else:
            self._protocol.sendMessage(b"".join(data), isBinary=opcode == _BINARY)

    def loseConnection(self) -> None:
        self._protocol.sendClose(code=1000)

    def abortConnection(self) -> None:
        self._protocol.dropConnection(abort=True)

    def registerProducer(self, producer, streaming) -> None:
        transport = self._protocol.transport
        # A connection upgraded from twisted.web still has the HTTP channel
        # registered as its producer; the session takes over from it.
        if getattr(transport, "producer", None) is not None:
            transport.unregisterProducer()
        transport.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        transport = self._protocol.transport
        if transport is not None:
            transport.unregisterProducer()

    def pauseProducing(self) -> None:
        self._protocol.transport.pauseProducing()

    def resumeProducing(self) -> None:
        self._protocol.transport.resumeProducing()

    def getPeer(self):
        return self._protocol.transport.getPeer()

    def getPeerCertificate(self):
        """
        The client certificate of a wss:// connection, or C{None}.
        """
        get = getattr(self._protocol.transport, "getPeerCertificate", None)
        return get() if get is not None else None


class StompWebSocketProtocol(WebSocketServerProtocol):
    """
    One WebSocket connection carrying one STOMP session.
    """

    session: StompSession | None = None

    def onConnect(self, request):
        if not self.factory.origin_allowed(request.origin):
            # 403 rather than Autobahn's own check, which answers 400 and
            # wants default ports spelled out in the patterns.
            raise ConnectionDeny(ConnectionDeny.FORBIDDEN, f"origin {request.origin!r} is not allowed")
        return choose_subprotocol(request.protocols)

    def onOpen(self) -> None:
        if type(self.transport) is tcp.Server:
            # As for STOMP over TCP: what the session writes is sent at once,
            # and a large body is never copied into a joined buffer.
            SendingServer.adopt(self.transport)
        factory = self.factory
        self.session = StompSession(
            factory.broker, WebSocketPipe(self), heart_beat_grace=factory.heart_beat_grace, kind="websocket"
        )

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.session.data_received(payload)

    def onClose(self, wasClean: bool, code, reason) -> None:
        if self.session is not None:
            self.session.connection_lost()
            self.session = None


class StompWebSocketFactory(WebSocketServerFactory):
    """
    Makes a L{StompWebSocketProtocol} per connection, on one broker, with
    the broker's frame limits as Autobahn's message limits.
    """

    protocol = StompWebSocketProtocol

    def __init__(self, broker, allowed_origins: tuple[str, ...] = ("*",), heart_beat_grace: float = 7.0) -> None:
        super().__init__(protocols=list(SUBPROTOCOLS))
        self.broker = broker
        self.heart_beat_grace = heart_beat_grace
        self.origin_allowed = origin_matcher(allowed_origins)
        limits = broker.config.limits
        self.setProtocolOptions(
            maxMessagePayloadSize=limits.max_frame_size,
            maxFramePayloadSize=limits.max_frame_size,
            # STOMP has heart-beats of its own.
            autoPingInterval=0,
            # A message that is too big or a text message that is not UTF-8
            # gets a close frame saying so (1009, 1007) rather than a
            # dropped connection, which clients only see as 1006.
            failByDrop=False,
        )
