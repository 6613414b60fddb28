"""
The plain TCP server transport a STOMP or WebSocket connection is made one
of (L{SendingServer.adopt}), and STOMP's reads of large bodies
(L{LargeBodyServer}), over real loopback sockets.
"""

import fcntl
import select
import socket
import struct
import termios

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol

from stompd.testing.discovery_contract import eventually
from stompd.testing.harness import make_broker
from stompd.transport.tcp import LargeBodyServer, SendingServer, StompFactory


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


class RecordingStompFactory(StompFactory):
    """A broker's TCP factory that keeps the protocols it makes."""

    def __init__(self, broker):
        super().__init__(broker)
        self.made = []

    def buildProtocol(self, addr):
        protocol = super().buildProtocol(addr)
        self.made.append(protocol)
        return protocol


async def frame_from(sock: socket.socket) -> bytes:
    """The next frame C{sock} receives (each part within 5 s), the reactor running meanwhile."""
    data = b""
    while not data.endswith(b"\x00"):
        assert await eventually(lambda: readable(sock), 5), f"no whole frame in 5 s, only {data!r}"
        chunk = sock.recv(65536)
        assert chunk, "the broker closed the connection"
        data += chunk
    return data.lstrip(b"\n")


def already_sent(sock: socket.socket) -> bytes:
    """What the broker has sent C{sock} so far (without the reactor running again)."""
    return sock.recv(65536) if readable(sock) else b""


def readable(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def unread(transport) -> int:
    """Bytes C{transport}'s socket holds that the broker has not read."""
    return struct.unpack("i", fcntl.ioctl(transport.socket.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]


@pytest_twisted.ensureDeferred
async def test_one_read_event_handles_a_large_body_and_what_follows_it():
    """
    A SEND whose large body the kernel already holds whole is handled in
    one turn of the reactor (one doRead): the rest of its body is read
    straight after its head, then its NUL, and its RECEIPT is sent. One
    whose body has not all arrived waits for a later turn.
    """
    factory = RecordingStompFactory(make_broker())
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    # Room in the broker's socket for a whole frame before it reads.
    port.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    client = socket.create_connection(("127.0.0.1", port.getHost().port))
    # Never waits long: the broker does not read while the test writes.
    client.settimeout(5)
    try:
        client.sendall(b"CONNECT\naccept-version:1.2\nlogin:guest\npasscode:guest\n\n\x00")
        assert (await frame_from(client)).startswith(b"CONNECTED\n")
        transport = factory.made[0].transport
        assert isinstance(transport, LargeBodyServer)
        transport.stopReading()
        # Large enough to be received in place after the first 64 KiB read.
        body = bytes(range(256)) * 520
        first, second = (
            b"SEND\ndestination:/queue/big\ncontent-length:%d\nreceipt:%d\n\n%s\x00" % (len(body), n, body)
            for n in (1, 2)
        )
        client.sendall(first)
        assert await eventually(lambda: unread(transport) >= len(first), 5)
        transport.doRead()
        # Sent during that turn: there before the reactor runs again.
        assert already_sent(client) == b"RECEIPT\nreceipt-id:1\n\n\x00"
        part = len(second) - 60000
        client.sendall(second[:part])
        assert await eventually(lambda: unread(transport) >= part, 5)
        transport.doRead()
        assert already_sent(client) == b""
        client.sendall(second[part:])
        assert await eventually(lambda: unread(transport) >= 60000, 5)
        transport.doRead()
        assert already_sent(client) == b"RECEIPT\nreceipt-id:2\n\n\x00"
    finally:
        client.close()
        await port.stopListening()
