"""
The contract every L{IConnector} must meet, as a pytest suite. A plugin
author subclasses L{ConnectorContract} and provides a C{make_connector}
fixture: a callable taking a reactor and returning a new, unstarted
connector whose upstream never answers (the suite passes a
C{MemoryReactorClock}, whose connections never complete), owning the
prefixes in C{prefixes}, with no buffer::

    class TestMyConnector(ConnectorContract):
        @pytest.fixture
        def make_connector(self):
            return lambda reactor: MyConnector(...)
"""

import pytest
from twisted.internet.testing import MemoryReactorClock
from zope.interface.verify import verifyObject

from stompd.interfaces import IConnector
from stompd.testing.harness import FakeClient, make_broker


class ConnectorContract:
    """
    Behaviour the broker relies on from a connector.
    """

    # A destination the connector owns, and one it does not.
    owned = "/queue/contract.owned"
    not_owned = "/queue/elsewhere"

    @pytest.fixture
    def running(self, make_connector):
        reactor = MemoryReactorClock()
        connector = make_connector(reactor)
        broker = make_broker(clock=reactor, connectors=[connector])
        broker.startService()
        yield broker, connector
        broker.stopService()

    def client(self, broker) -> FakeClient:
        made = FakeClient(broker)
        made.connect()
        return made

    def test_provides_interface(self, make_connector):
        connector = make_connector(MemoryReactorClock())
        verifyObject(IConnector, connector)
        assert isinstance(connector.name, str) and connector.name
        assert all(isinstance(prefix, str) for prefix in connector.prefixes)
        assert any(self.owned.startswith(prefix) for prefix in connector.prefixes)
        assert isinstance(connector.relays_subscriptions, bool)

    def test_starts_without_its_upstream_and_stops(self, make_connector):
        reactor = MemoryReactorClock()
        connector = make_connector(reactor)
        broker = make_broker(clock=reactor, connectors=[connector])
        results = []
        started = broker.startService()
        started.addBoth(results.append)
        assert results == [None]
        broker.stopService().addBoth(results.append)
        assert results == [None, None]

    def test_a_send_it_cannot_forward_is_an_error_naming_it(self, running):
        broker, connector = running
        producer = self.client(broker)
        producer.send("SEND", {"destination": self.owned, "receipt": "r"}, b"body")
        frames = producer.frames()
        assert [frame.command for frame in frames] == ["ERROR"]
        assert connector.name in frames[0].headers["message"]
        assert frames[0].headers["receipt-id"] == "r"

    def test_destinations_it_does_not_own_stay_local(self, running):
        broker, _ = running
        producer = self.client(broker)
        producer.send("SEND", {"destination": self.not_owned, "receipt": "r"}, b"body")
        assert [frame.command for frame in producer.frames()] == ["RECEIPT"]
        consumer = self.client(broker)
        consumer.send("SUBSCRIBE", {"destination": self.not_owned, "id": "1"})
        assert [frame.body for frame in consumer.frames()] == [b"body"]
