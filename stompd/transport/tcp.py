"""
STOMP over TCP (and TLS): a Twisted protocol that hands bytes to a session.
"""

from twisted.internet.interfaces import ITCPTransport
from twisted.internet.protocol import Factory, Protocol

from stompd.session import StompSession


class StompProtocol(Protocol):
    """
    One TCP connection. The transport is already an
    L{stompd.interfaces.ISessionTransport}, so the session uses it directly.
    """

    session: StompSession | None = None

    def connectionMade(self) -> None:
        # STOMP frames are small and latency matters: without this, Nagle's
        # algorithm meets the peer's delayed ACK and a frame can wait 40 ms.
        if ITCPTransport.providedBy(self.transport):
            self.transport.setTcpNoDelay(True)
        factory = self.factory
        self.session = StompSession(factory.broker, self.transport, oci_compat=factory.oci_compat)

    def dataReceived(self, data: bytes) -> None:
        self.session.data_received(data)

    def connectionLost(self, reason) -> None:
        if self.session is not None:
            self.session.connection_lost()


class StompFactory(Factory):
    """
    Makes a L{StompProtocol} per connection, all on one broker.

    @ivar oci_compat: its sessions behave as OCI Queue's STOMP interface.
    """

    protocol = StompProtocol
    noisy = False

    def __init__(self, broker, oci_compat: bool = False) -> None:
        self.broker = broker
        self.oci_compat = oci_compat
