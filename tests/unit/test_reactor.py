"""
L{DirectReadReactor}: read events straight to the connection, everything
else and every failure as Twisted's epoll reactor handles them; over real
sockets, on a reactor of its own driven a poll at a time.
"""

import socket
import time

import pytest
from twisted.internet import error, main
from twisted.internet.epollreactor import EPollReactor
from twisted.internet.interfaces import IHalfCloseableDescriptor
from twisted.internet.selectreactor import SelectReactor
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from zope.interface import implementer

from stompd.testing.harness import make_broker
from stompd.transport.reactor import DirectReadReactor
from stompd.transport.tcp import StompFactory


@pytest.fixture
def direct():
    reactor = EPollReactor()
    assert DirectReadReactor.adopt(reactor)
    yield reactor
    reactor.removeAll()


@pytest.fixture
def socket_pair():
    ends = socket.socketpair()
    for end in ends:
        end.setblocking(False)
    yield ends
    for end in ends:
        end.close()


class Descriptor:
    """
    A socket's end as a reactor sees it: what the reactor called, and
    what C{doRead} does (C{reads}: a callable, its result returned).
    """

    def __init__(self, sock, reads=lambda: None):
        self.sock = sock
        self.reads = reads
        self.calls = []
        self.name = "Descriptor-%d" % sock.fileno()

    def fileno(self):
        return self.sock.fileno()

    def logPrefix(self):
        return self.name

    def doRead(self):
        self.calls.append(("doRead", self.sock.recv(1024)))
        return self.reads()

    def doWrite(self):
        self.calls.append(("doWrite",))

    def connectionLost(self, reason):
        self.calls.append(("connectionLost", reason))


@implementer(IHalfCloseableDescriptor)
class HalfCloseable(Descriptor):
    def readConnectionLost(self, reason):
        self.calls.append(("readConnectionLost", reason))

    def writeConnectionLost(self, reason):
        self.calls.append(("writeConnectionLost", reason))


def test_only_a_plain_epoll_reactor_is_adopted():
    plain = EPollReactor()
    other = SelectReactor()
    try:
        assert DirectReadReactor.adopt(plain)
        assert type(plain) is DirectReadReactor
        assert plain.doIteration == plain.doPoll
        assert not DirectReadReactor.adopt(other)
        assert type(other) is SelectReactor
        assert not DirectReadReactor.adopt(Clock())
    finally:
        for reactor in (plain, other):
            reactor.disconnectAll()


def test_a_read_event_reaches_do_read(socket_pair, direct):
    here, there = socket_pair
    descriptor = Descriptor(here)
    direct.addReader(descriptor)
    there.send(b"frame")
    direct.doIteration(1)
    assert descriptor.calls == [("doRead", b"frame")]
    direct.doIteration(0)
    assert len(descriptor.calls) == 1


@pytest.mark.parametrize(
    "kind, read_result, told, reason",
    [
        # A read that ends the connection loses it.
        (Descriptor, main.CONNECTION_LOST, "connectionLost", error.ConnectionLost),
        # A half-closeable connection hears that its read side closed.
        (HalfCloseable, main.CONNECTION_DONE, "readConnectionLost", error.ConnectionDone),
    ],
)
def test_a_read_that_ends_the_connection_is_told_to_it(socket_pair, direct, kind, read_result, told, reason):
    here, there = socket_pair
    descriptor = kind(here, reads=lambda: read_result)
    direct.addReader(descriptor)
    there.send(b"x")
    direct.doIteration(1)
    assert [call[0] for call in descriptor.calls] == ["doRead", told]
    descriptor.calls[1][1].trap(reason)
    assert descriptor not in direct.getReaders()


def test_an_exception_in_do_read_is_logged_for_its_connection_and_closes_only_it(direct):
    failing_pair, working_pair = socket.socketpair(), socket.socketpair()
    events = []
    globalLogPublisher.addObserver(events.append)
    try:

        def fail():
            raise ZeroDivisionError("a bug")

        failing = Descriptor(failing_pair[0], reads=fail)
        working = Descriptor(working_pair[0])
        direct.addReader(failing)
        direct.addReader(working)
        assert failing in direct.getReaders()
        failing_pair[1].send(b"a")
        working_pair[1].send(b"b")
        # Both events in one poll (a socket pair's send is in its peer at
        # once): the failure must not keep the other from its read.
        direct.doIteration(1)
        assert failing not in direct.getReaders()
        assert working in direct.getReaders()
    finally:
        globalLogPublisher.removeObserver(events.append)
        direct.removeAll()
        for end in (*failing_pair, *working_pair):
            end.close()
    assert working.calls == [("doRead", b"b")]
    assert [call[0] for call in failing.calls] == ["doRead", "connectionLost"]
    failing.calls[1][1].trap(ZeroDivisionError)
    logged = [event for event in events if event.get("isError")]
    assert len(logged) == 1
    assert logged[0]["failure"].check(ZeroDivisionError)
    assert logged[0]["log_system"] == failing.logPrefix()


def test_other_events_go_twisteds_way(socket_pair, direct):
    here, there = socket_pair
    writer = Descriptor(here)
    direct.addWriter(writer)
    direct.doIteration(1)
    assert writer.calls == [("doWrite",)]

    # Readable and writable in one event.
    reader_writer = Descriptor(here)
    direct.removeWriter(writer)
    direct.addReader(reader_writer)
    direct.addWriter(reader_writer)
    there.send(b"x")
    direct.doIteration(1)
    assert reader_writer.calls == [("doRead", b"x"), ("doWrite",)]


def test_a_stomp_client_is_served(direct):
    port = direct.listenTCP(0, StompFactory(make_broker()), interface="127.0.0.1")
    client = socket.create_connection(("127.0.0.1", port.getHost().port))
    client.setblocking(False)
    received = b""
    try:
        client.send(b"CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n\n\x00")
        deadline = time.monotonic() + 5
        while b"\x00" not in received and time.monotonic() < deadline:
            direct.runUntilCurrent()
            direct.doIteration(0.05)
            try:
                received += client.recv(4096)
            except BlockingIOError:
                pass
    finally:
        client.close()
        port.stopListening()
    assert received.startswith(b"CONNECTED\n")
    assert b"version:1.2\n" in received
