"""
The built-in connectors against the connector contract.
"""

import pytest

from stompd.connectors import fanout, relay, static
from stompd.testing.connector_contract import ConnectorContract


class TestRelay(ConnectorContract):
    @pytest.fixture
    def make_connector(self):
        settings = relay.create_connector.parse_config(
            {"name": "up", "uri": "tcp://127.0.0.1:1", "prefixes": ["/queue/contract."]}
        )
        return lambda reactor: relay.RelayConnector(settings, reactor)


class TestFanout(ConnectorContract):
    @pytest.fixture
    def make_connector(self):
        uri = "fanout://(static:(tcp://127.0.0.1:1,tcp://127.0.0.1:2))?minAckCount=2"
        settings = fanout.parse_config({"name": "broadcast", "uri": uri, "prefixes": ["/queue/contract.", "/topic/"]})
        agent = static.StaticDiscovery(static.parse_config({"uri": settings.options.discovery}))
        return lambda reactor: fanout.FanoutConnector(settings, reactor, agent)
