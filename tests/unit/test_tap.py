"""
The service tree's start order: the broker's store is ready before any
listener accepts a client, and a store that cannot start ends start-up;
and what a listener holds before it accepts.
"""

import gc
import select
import socket
import time

import pytest
import pytest_twisted
from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, fail
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock

from stompd.errors import ConfigError
from stompd.tap import GC_YOUNG_THRESHOLD, OrderedStartService, _listen, collect_less, with_backlog


class Recorded(Service):
    """
    A service that notes when it starts, and starts as C{result} says.
    """

    def __init__(self, name: str, started: list, result=None) -> None:
        self.name = name
        self._started = started
        self._result = result

    def startService(self):
        Service.startService(self)
        self._started.append(self.name)
        return self._result


def test_children_wait_for_the_one_before():
    started = []
    store_ready = Deferred()
    top = OrderedStartService(Clock())
    Recorded("broker", started, store_ready).setServiceParent(top)
    Recorded("listener", started).setServiceParent(top)
    top.startService()
    assert started == ["broker"]
    store_ready.callback(None)
    assert started == ["broker", "listener"]
    assert top.started.called


def test_a_child_failing_later_ends_start_up_with_its_message():
    failures = []
    store_ready = Deferred()
    top = OrderedStartService(Clock(), on_failure=lambda reactor, problem: failures.append(problem))
    started = []
    Recorded("broker", started, store_ready).setServiceParent(top)
    Recorded("listener", started).setServiceParent(top)
    top.startService()
    store_ready.errback(ConfigError("storage.redis: cannot connect to redis://127.0.0.1:1/0"))
    assert failures == ["storage.redis: cannot connect to redis://127.0.0.1:1/0"]
    assert started == ["broker"]
    # Stopping what never started is fine.
    top.stopService()


def test_a_child_failing_at_once_exits_with_one_line():
    top = OrderedStartService(Clock())
    Recorded("broker", [], fail(ConfigError("storage: broken"))).setServiceParent(top)
    with pytest.raises(SystemExit, match="^stompd: storage: broken$"):
        top.startService()


@pytest.fixture
def collector_restored():
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_the_collector_runs_less_often_and_skips_what_start_up_made(collector_restored):
    frozen_before = gc.get_freeze_count()
    collect_less()
    assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD
    assert gc.get_freeze_count() > frozen_before
    # Cycles made later are still collected.
    cycle = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1


@pytest.mark.parametrize(
    "description, expected",
    [
        ("tcp:61613", "tcp:61613:backlog=4096"),
        ("tcp:port=0:interface=127.0.0.1", "tcp:port=0:interface=127.0.0.1:backlog=4096"),
        ("unix:/run/stompd.sock", "unix:/run/stompd.sock:backlog=4096"),
        ("tcp:61613:backlog=10", "tcp:61613:backlog=10"),
        ("systemd:domain=INET:index=0", "systemd:domain=INET:index=0"),
    ],
)
def test_listeners_get_a_deep_backlog_unless_they_say(description, expected):
    assert with_backlog(description) == expected


@pytest_twisted.ensureDeferred
async def test_a_burst_of_connections_waits_to_be_accepted_rather_than_dropped():
    """
    Far more than Twisted's default backlog of 50 clients connect while the
    broker accepts none: the kernel completes every handshake and holds
    them, instead of dropping SYNs that the clients would send again only a
    second later.
    """
    from twisted.internet import reactor

    parent = MultiService()
    _listen(parent, reactor, "tcp:0:interface=127.0.0.1", "test", Factory.forProtocol(Protocol))
    [listening] = parent.services
    listening.startService()
    port = await listening._waitingForPort
    port.stopReading()
    clients = []
    # The kernel caps a backlog at net.core.somaxconn (4096 by default).
    with open("/proc/sys/net/core/somaxconn") as limit:
        count = min(300, int(limit.read()))
    try:
        for _ in range(count):
            client = socket.socket()
            client.setblocking(False)
            client.connect_ex(("127.0.0.1", port.getHost().port))
            clients.append(client)
        waiting = list(clients)
        deadline = time.monotonic() + 0.5
        while waiting and time.monotonic() < deadline:
            _, connected, _ = select.select([], waiting, [], deadline - time.monotonic())
            waiting = [client for client in waiting if client not in connected]
        assert not waiting, f"{len(waiting)} of {len(clients)} connections not established"
    finally:
        for client in clients:
            client.close()
        await port.stopListening()
