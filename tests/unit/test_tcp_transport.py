"""
The plain TCP server transport a STOMP or WebSocket connection is made one
of (L{SendingServer.adopt}), over real loopback sockets.
"""

import socket

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol

from stompd.transport.tcp import SendingServer


class Adopting(Protocol):
    def connectionMade(self):
        SendingServer.adopt(self.transport)
        self.factory.made.append(self.transport)
        if len(self.factory.made) == self.factory.expected:
            self.factory.all_made.callback(None)


@pytest_twisted.ensureDeferred
async def test_adopted_transports_share_the_client_address_and_still_tell_it():
    factory = Factory.forProtocol(Adopting)
    factory.made, factory.expected, factory.all_made = [], 2, Deferred()
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    clients = [socket.create_connection(("127.0.0.1", port.getHost().port)) for _ in range(2)]
    try:
        await factory.all_made
        first, second = factory.made
        assert first.hostname is second.hostname == "127.0.0.1"
        assert first.client[0] is first.hostname
        assert (first.getPeer().host, first.getPeer().port) == ("127.0.0.1", clients[0].getsockname()[1])
        assert repr(first) == f"<Adopting #{first.sessionno} on {port.getHost().port}>"
        assert first.logPrefix() == f"Adopting,{first.sessionno},127.0.0.1"
        first.write_frames([b"MESSAGE\n\nhello\x00"])
        clients[0].settimeout(5)
        assert clients[0].recv(100) == b"MESSAGE\n\nhello\x00"
    finally:
        for client in clients:
            client.close()
        await port.stopListening()
