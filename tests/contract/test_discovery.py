"""
The discovery agents against their contract: Redis on a real redis-server.
"""

import pytest

from stompd.connectors import redis_discovery
from stompd.errors import ConfigError
from stompd.testing.discovery_contract import DiscoveryContract
from tests.support.redis import RedisServer


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


class TestRedisDiscovery(DiscoveryContract):
    wait = 5.0

    @pytest.fixture
    def agents(self, redis_server, request):
        from twisted.internet import reactor

        # A prefix per test: adverts of one test never meet another's.
        uri = f"redis://127.0.0.1:{redis_server.port}/0?prefix=test:{request.node.name}:"
        settings = redis_discovery.parse_config({"uri": uri})
        return lambda: redis_discovery.RedisDiscovery(settings, reactor)


def test_redis_discovery_uri_defaults_and_errors():
    settings = redis_discovery.parse_config({"uri": "redis://10.0.0.5:6380/2"})
    assert (settings.url, settings.prefix) == ("redis://10.0.0.5:6380/2", "stompd:discovery:")
    with pytest.raises(ConfigError, match="uri: unknown option 'group'"):
        redis_discovery.parse_config({"uri": "redis://h:1/0?group=x"})
    with pytest.raises(ConfigError, match="uri: expected redis://"):
        redis_discovery.parse_config({"uri": "redis://h:1/zero"})


def test_every_built_in_agent_provides_the_interface():
    from twisted.internet.task import Clock
    from zope.interface.verify import verifyObject

    from stompd.connectors import multicast, static
    from stompd.interfaces import IDiscoveryAgent

    verifyObject(IDiscoveryAgent, static.StaticDiscovery(static.parse_config({"uri": "static:(tcp://127.0.0.1:1)"})))
    verifyObject(IDiscoveryAgent, multicast.MulticastDiscovery(multicast.parse_config({"uri": "multicast://default"}), Clock()))
