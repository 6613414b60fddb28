"""
The contract every L{IDiscoveryAgent} that advertises must meet, as a
pytest suite. A plugin author subclasses L{DiscoveryContract} and provides
an C{agents} fixture: a callable making a new agent on one shared
directory each time it is called (the suite starts and stops them)::

    class TestMyDiscovery(DiscoveryContract):
        @pytest.fixture
        def agents(self):
            return lambda: MyAgent(...)

Found and lost brokers are awaited for up to C{wait} seconds (a class
attribute, 15 by default).
"""

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater
from zope.interface.verify import verifyObject

from stompd.interfaces import IDiscoveryAgent


class Watcher:
    """
    What an agent reported, in order.
    """

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def found(self, uri: str) -> None:
        self.events.append(("found", uri))

    def lost(self, uri: str) -> None:
        self.events.append(("lost", uri))

    @property
    def present(self) -> set[str]:
        now = set()
        for event, uri in self.events:
            (now.add if event == "found" else now.discard)(uri)
        return now


async def eventually(predicate, seconds: float) -> bool:
    deadline = reactor.seconds() + seconds
    while not predicate():
        if reactor.seconds() > deadline:
            return False
        await deferLater(reactor, 0.05, lambda: None)
    return True


class DiscoveryContract:
    """
    Behaviour a fanout connector relies on from a discovery agent.
    """

    wait = 15.0

    def test_provides_interface(self, agents):
        verifyObject(IDiscoveryAgent, agents())

    @pytest_twisted.ensureDeferred
    async def test_an_advertised_broker_is_found_then_lost_once_it_stops(self, agents):
        advertiser, finder, watcher = agents(), agents(), Watcher()
        advertiser.advertise("tcp://127.0.0.1:61999", "node-a")
        finder.watch(watcher.found, watcher.lost)
        await advertiser.start()
        await finder.start()
        try:
            assert await eventually(lambda: watcher.present == {"tcp://127.0.0.1:61999"}, self.wait)
            await advertiser.stop()
            assert await eventually(lambda: not watcher.present, self.wait)
            assert watcher.events == [("found", "tcp://127.0.0.1:61999"), ("lost", "tcp://127.0.0.1:61999")]
        finally:
            await finder.stop()

    @pytest_twisted.ensureDeferred
    async def test_an_agent_does_not_find_its_own_broker(self, agents):
        agent, other, watcher = agents(), agents(), Watcher()
        agent.advertise("tcp://127.0.0.1:61998", "node-b")
        agent.watch(watcher.found, watcher.lost)
        other.advertise("tcp://127.0.0.1:61997", "node-c")
        await agent.start()
        await other.start()
        try:
            assert await eventually(lambda: watcher.present == {"tcp://127.0.0.1:61997"}, self.wait)
        finally:
            await other.stop()
            await agent.stop()
