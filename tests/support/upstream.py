"""
An upstream broker in memory, for connector unit tests: an endpoint whose
connections are C{StringTransport}s, and the broker's end of each.
"""

from twisted.internet.defer import fail, succeed
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from zope.interface import implementer

from stompd.codec import Frame, FrameParser, encode_frame


@implementer(IStreamClientEndpoint)
class FakeEndpoint:
    """
    Connects each attempt to a new StringTransport, or refuses while
    C{refusing}.
    """

    def __init__(self) -> None:
        self.refusing = False
        self.attempts = 0
        self.connections: list = []

    def connect(self, factory):
        self.attempts += 1
        if self.refusing:
            return fail(ConnectionRefusedError())
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.connections.append(Peer(protocol, transport))
        return succeed(protocol)


class Peer:
    """
    The upstream broker's end of one connection.
    """

    def __init__(self, protocol, transport) -> None:
        self.protocol = protocol
        self.transport = transport
        self._parser = FrameParser()
        self._parser.version = "1.2"
        self._read = 0

    def frames(self) -> list[Frame]:
        data = self.transport.value()
        self._parser.feed(data[self._read :])
        self._read = len(data)
        found = []
        while (frame := self._parser.next_frame()) is not None:
            found.append(frame)
        return found

    def send(self, command: str, headers: dict, body: bytes = b"") -> None:
        self.protocol.dataReceived(encode_frame(Frame(command, headers, body), "1.2"))

    def accept(self, heart_beat: str = "0,0") -> None:
        self.send("CONNECTED", {"version": "1.2", "heart-beat": heart_beat})

    def drop(self) -> None:
        self.protocol.connectionLost(Failure(ConnectionDone()))
