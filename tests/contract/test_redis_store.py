"""
The store contract against a real redis-server, plus what only a shared
store does: several nodes, node leases, pub/sub.
"""

import pytest
import pytest_twisted
from twisted.internet import reactor

from stompd.storage.redis import RedisSettings, RedisStore
from stompd.testing.store_contract import StoreContract
from tests.support.redis import RedisServer


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest_twisted.async_yield_fixture
async def redis_store(redis_server):
    redis_server.flush()
    store = RedisStore(RedisSettings(url=redis_server.url, timeout=2.0, node_lease=2.0), "n1", reactor)
    await store.start()
    yield store
    await store.stop()


class TestRedisStore(StoreContract):
    @pytest.fixture
    def store(self, redis_store):
        return redis_store
