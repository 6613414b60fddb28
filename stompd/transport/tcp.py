"""
STOMP over TCP (and TLS): a Twisted protocol that hands bytes to a session.
"""

import fcntl
import socket
import struct
import sys
import termios
from errno import ENOBUFS, EWOULDBLOCK

from twisted.internet import error, main, tcp
from twisted.internet.interfaces import ITCPTransport
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure

from stompd.session import StompSession

# Buffered writes of at least this many bytes in all, in at most this many
# parts (large bodies among them, then), go out in one gathering sendmsg()
# instead of being joined first. Many small frames are joined: that costs
# less than a gather and the bookkeeping of its parts.
GATHER_FROM = 64 * 1024
GATHER_PARTS = 64

# The most reads of one connection in one turn of the reactor while a large
# body arrives.
LARGE_BODY_READS = 4

# Seconds between looks, while closing, at whether the client has received
# what the kernel still holds for it; and the most seconds to keep looking
# (the session aborts a client that does not read much sooner).
UNSENT_POLL = 0.05
UNSENT_PATIENCE = 30.0
# TCP states (Linux TCP_INFO) in which the client can still receive:
# established, and half-closed by the client (it sent FIN, may still read).
_CAN_STILL_RECEIVE = (1, 8)


class SendingServer(tcp.Server):
    """
    A TCP server transport that writes what a session gives it without
    delay or needless copies (the write side of L{ISessionTransport}).

    Frames given together (L{write_frames}), and a frame given as its parts
    (L{writeSequence}), are sent at once, as far as the socket takes them,
    rather than at the reactor's next turn. And Twisted's
    transport joins every buffered write into one C{bytes} before sending:
    for a large body, a copy per delivery. Here, when much is buffered in
    few parts, the buffers go to the kernel as they are, in one gathering
    C{sendmsg}; otherwise (small frames, or a single buffer) Twisted's own
    way is kept.
    """

    @classmethod
    def adopt(cls, transport: tcp.Server) -> None:
        """
        Make C{transport}, one of the plain servers a listening port makes
        whatever the endpoint, one of this class; and drop what Twisted's
        keeps per connection that a broker of many idle connections does
        without: its repr, made when asked instead, and its own copy of the
        client's address, shared by every connection from that address.
        About 140 bytes a connection.
        """
        transport.__class__ = cls
        del transport.repstr
        host = sys.intern(transport.hostname)
        transport.hostname = host
        transport.client = (host, *transport.client[1:])

    def __repr__(self) -> str:
        return f"<{self.protocol.__class__.__name__} #{self.sessionno} on {self.server._realPortNumber}>"

    def buffered_bytes(self) -> int:
        """
        Bytes written and not yet sent (see L{ISessionTransport}).
        """
        return len(self.dataBuffer) - self.offset + self._tempDataLen

    def write_frames(self, frames: list[bytes]) -> None:
        """
        Write C{frames} in one piece, sending at once what the socket takes
        if nothing waits to be sent before it, rather than at the reactor's
        next turn (which would find the socket writable and send it then):
        a burst's frames reach the client one poll sooner, and a connection
        whose socket takes them all is never registered for writing. The
        rest is buffered as L{write} does. See L{ISessionTransport}.
        """
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        if self.connected and not self.disconnecting and not self._tempDataBuffer and self.offset >= len(self.dataBuffer):
            try:
                sent = self.socket.send(data)
            except OSError:
                # Nothing sent: the reactor meets an error again when it
                # tries to send, and closes the connection for it.
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        self.write(data)

    def writeSequence(self, parts) -> None:
        """
        Write one frame as its parts, a large body among them, never joined:
        if nothing waits to be sent before them, what the socket takes goes
        at once, in one gathering C{sendmsg}, as L{write_frames} sends (which
        also spares registering the socket for writing and a turn of the
        reactor per large message); the rest is buffered for L{doWrite}.
        Parts may be any buffers, not only C{bytes}: a large body is the
        C{bytearray} it was received into (L{stompd.codec.frame.Frame.body}).
        """
        if not self.connected or self._writeDisconnected or not parts:
            return
        pending = list(parts)
        size = sum(map(len, pending))
        if not self.disconnecting and not self._tempDataBuffer and self.offset >= len(self.dataBuffer):
            try:
                sent = self.socket.sendmsg(pending)
            except OSError:
                # Nothing sent: the reactor meets an error again when it
                # tries to send, and closes the connection for it.
                sent = 0
            if sent == size:
                return
            size -= sent
            _drop_sent(pending, sent)
        self._tempDataBuffer.extend(pending)
        self._tempDataLen += size
        self._maybePauseProducer()
        self.startWriting()

    def doWrite(self):
        pending = self._tempDataBuffer
        if (
            self.offset < len(self.dataBuffer)
            or not 2 <= len(pending) <= GATHER_PARTS
            or self._tempDataLen < GATHER_FROM
        ):
            return super().doWrite()
        try:
            sent = self.socket.sendmsg(pending)
        except OSError as e:
            if e.args[0] in (EWOULDBLOCK, ENOBUFS):
                return None
            return main.CONNECTION_LOST
        self._tempDataLen -= sent
        _drop_sent(pending, sent)
        if pending:
            return None
        # All sent: Twisted's doWrite, with nothing left, stops writing,
        # resumes a paused producer and completes a pending close.
        return super().doWrite()


def _drop_sent(parts: list, sent: int) -> None:
    """
    Take the first C{sent} bytes off C{parts}, buffers sent in that order:
    the parts sent whole go, and one sent in part is left as a view of its
    rest.
    """
    done = 0
    while done < len(parts) and sent >= len(parts[done]):
        sent -= len(parts[done])
        done += 1
    del parts[:done]
    if sent:
        parts[0] = memoryview(parts[0])[sent:]


class LargeBodyServer(SendingServer):
    """
    A L{SendingServer} for STOMP over TCP, which also hands what it reads
    to the session itself, receives a large message body straight into
    its buffer (L{StompSession.receive_buffer}) rather than in 64 KiB reads
    copied there, and closes a connection only once the client has
    received what was sent (see L{_postLoseConnection}).
    """

    def _unsent_in_kernel(self) -> int:
        """
        Bytes the kernel holds for a client that may still take them: not
        yet sent, or not yet acknowledged by it (Linux C{SIOCOUTQ}); 0 once
        the connection is reset or closed by the kernel.
        """
        try:
            state = self.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
            if state not in _CAN_STILL_RECEIVE:
                return 0
            return struct.unpack("i", fcntl.ioctl(self.socket.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
        except (OSError, AttributeError):
            return 0

    def _postLoseConnection(self):
        """
        Everything is handed to the kernel: close once the client has it.
        Closed now, the socket's FIN would wait behind what a client that
        does not read never takes, and the client would hold an open
        connection to a broker that is done with it. Meanwhile the session's
        close timeout may still abort it (L{abortConnection}).
        """
        if self._unsent_in_kernel():
            self.stopWriting()
            deadline = self.reactor.seconds() + UNSENT_PATIENCE
            self.reactor.callLater(UNSENT_POLL, self._close_once_received, deadline)
            return None
        return super()._postLoseConnection()

    def _close_once_received(self, deadline: float) -> None:
        if self.disconnected or self._aborting:
            return
        if self._unsent_in_kernel() and self.reactor.seconds() < deadline:
            self.reactor.callLater(UNSENT_POLL, self._close_once_received, deadline)
            return
        self.connectionLost(Failure(error.ConnectionDone()))

    def doRead(self):
        # Not through the protocol's forwarder and Twisted's layers of
        # calls: a frame reaches the session a few calls sooner. While a
        # large body arrives, reads follow one another in this call as long
        # as each found the socket had more (a turn of the reactor between
        # them costs about as much as the session's work on the body): the
        # rest of the body, then what follows it. A session that begins a
        # large body has handled every frame before it, so it reads on.
        session = self.protocol.session
        into = session.receive_buffer()
        for _ in range(LARGE_BODY_READS):
            try:
                if into is None:
                    data = self.socket.recv(self.bufferSize)
                else:
                    count = self.socket.recv_into(into)
            except OSError as e:
                if e.args[0] == EWOULDBLOCK:
                    return None
                return main.CONNECTION_LOST
            if into is None:
                if not data:
                    return main.CONNECTION_DONE
                session.data_received(data)
                # Read on only if a large body began.
                into = session.receive_buffer()
                if into is None:
                    return None
            else:
                if not count:
                    return main.CONNECTION_DONE
                session.received_into(count)
                if count < len(into):
                    return None
                # The body is all there: what follows it likely is too.
                into = session.receive_buffer()
        return None


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
        if type(self.transport) is tcp.Server:
            # Listening ports make plain servers, whatever the endpoint; the
            # subclass sends frames at once, reads and writes large bodies
            # without extra copies, lets the session see what waits to be
            # sent, and closes once the client has what it was sent.
            LargeBodyServer.adopt(self.transport)
        factory = self.factory
        self.session = StompSession(factory.broker, self.transport, oci_compat=factory.oci_compat)

    # Forwarded, not bound to the session's method in connectionMade:
    # binding saves a call per read but costs every idle connection a bound
    # method and a larger instance dict. (A LargeBodyServer, the transport
    # of nearly every connection, hands reads to the session itself.)

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
