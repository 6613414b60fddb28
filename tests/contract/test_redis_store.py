"""
The store contract against a real redis-server, plus what only a shared
store does: several nodes, node leases, pub/sub.
"""

from contextlib import asynccontextmanager

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import DeferredList

from stompd.broker.policy import DEFAULT_POLICY
from stompd.errors import ConfigError, StorageError
from stompd.storage.redis import RedisSettings, RedisStore
from stompd.testing.store_contract import QUEUE, StoreContract, delivery, ids, message
from tests.support.redis import RedisServer, free_port


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


def settings(server, **options) -> RedisSettings:
    return RedisSettings(url=server.url, **{"timeout": 2.0, "node_lease": 2.0, **options})


async def started(server, node: str, **options) -> RedisStore:
    store = RedisStore(settings(server, **options), node, reactor)
    await store.start()
    return store


async def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = reactor.seconds() + timeout
    while not predicate():
        if reactor.seconds() > deadline:
            return False
        await sleep(0.02)
    return True


def sleep(seconds: float):
    from twisted.internet.task import deferLater

    return deferLater(reactor, seconds, lambda: None)


@asynccontextmanager
async def running(server, *nodes: str, **options):
    """
    Started stores, one per node id; all stopped on the way out.
    """
    stores = []
    try:
        for node in nodes:
            stores.append(await started(server, node, **options))
        yield stores
    finally:
        for store in stores:
            await store.stop()


async def crash(store: RedisStore) -> None:
    """
    Stop a store as a killed process would: no renewals, nothing given back.
    """
    for loop in (store._renewing, store._reaping):
        loop.stop()
    await store._disconnect()


@pytest_twisted.ensureDeferred
async def test_each_script_run_is_timed_once_for_the_calls_it_carries(redis_store):
    observed = []
    redis_store.time_calls(lambda operation, seconds, calls: observed.append((operation, calls, seconds >= 0)))
    # Three SENDs of one turn are one run.
    await DeferredList([redis_store.enqueue(QUEUE, [message(n)]) for n in range(3)], fireOnOneErrback=True)
    taken = await redis_store.reserve(QUEUE, 3, 0.0, DEFAULT_POLICY)
    await redis_store.ack(QUEUE, [delivery(m) for m in taken])
    assert observed == [("enqueue", 3, True), ("reserve", 1, True), ("ack", 1, True)]


@pytest_twisted.ensureDeferred
async def test_other_nodes_hear_of_work_and_topics(redis_server):
    redis_server.flush()
    async with running(redis_server, "n1", "n2") as (n1, n2):
        work, topics, own = [], [], []
        n2.watch(work.append)
        n2.watch_topics(lambda *got: topics.append(got))
        n1.watch_topics(lambda *got: own.append(got))
        await n1.enqueue(QUEUE, [message(1)])
        assert await wait_until(lambda: work == [QUEUE])
        await n1.publish("/", "prices.eu", message(2, priority=7))
        assert await wait_until(lambda: topics)
        [(vhost, topic, got)] = topics
        assert (vhost, topic, got.id, got.body, got.priority, got.headers) == (
            "/", "prices.eu", "m2", b"body\x002", 7, message(2).headers,
        )
        await sleep(0.1)
        assert own == []


@pytest_twisted.ensureDeferred
async def test_a_gone_node_gives_back_what_it_held(redis_server):
    redis_server.flush()
    n1, n2 = await started(redis_server, "n1"), await started(redis_server, "n2")
    try:
        work = []
        n1.watch(work.append)
        await n1.enqueue(QUEUE, [message(1)])
        [held] = await n2.reserve(QUEUE, 1, 0.0, DEFAULT_POLICY)
        await crash(n2)
        # Within the node lease (2 s) and one reaping round (1 s).
        assert await wait_until(lambda: QUEUE in work, timeout=6.0)
        [again] = await n1.reserve(QUEUE, 1, 1.0, DEFAULT_POLICY)
        assert (again.id, again.delivery_count) == (held.id, 2)
        # The gone node's late ACK changes nothing.
        assert await n1.ack(QUEUE, [delivery(held)]) == 0
    finally:
        await n1.stop()


@pytest_twisted.ensureDeferred
async def test_a_node_that_stops_gives_back_at_once(redis_server):
    redis_server.flush()
    n1, n2 = await started(redis_server, "n1"), await started(redis_server, "n2")
    try:
        await n1.enqueue(QUEUE, [message(1)])
        await n2.reserve(QUEUE, 1, 0.0, DEFAULT_POLICY)
        await n2.stop()
        assert await ids(n1.reserve(QUEUE, 1, 0.0, DEFAULT_POLICY)) == ["m1"]
    finally:
        await n1.stop()


@pytest_twisted.ensureDeferred
async def test_a_restarted_node_takes_back_its_own(redis_server):
    redis_server.flush()
    n1 = await started(redis_server, "n1")
    await n1.enqueue(QUEUE, [message(1)])
    await n1.reserve(QUEUE, 1, 0.0, DEFAULT_POLICY)
    await crash(n1)
    again = await started(redis_server, "n1")
    try:
        [m1] = await again.reserve(QUEUE, 1, 0.0, DEFAULT_POLICY)
        assert m1.delivery_count == 2
    finally:
        await again.stop()


@pytest_twisted.ensureDeferred
async def test_a_node_id_in_use_is_refused(redis_server):
    redis_server.flush()
    async with running(redis_server, "n1", node_lease=1.0, timeout=0.5):
        with pytest.raises(ConfigError, match="node-id: 'n1' is in use"):
            await started(redis_server, "n1", node_lease=1.0, timeout=0.5)


@pytest_twisted.ensureDeferred
async def test_key_prefixes_keep_brokers_apart(redis_server):
    redis_server.flush()
    async with running(redis_server, "n1") as (ours,), running(redis_server, "n2", key_prefix="other:") as (theirs,):
        await ours.enqueue(QUEUE, [message(1)])
        assert await theirs.depth(QUEUE) == 0
        assert await ours.depth(QUEUE) == 1
        # Every queue key under its broker's prefix (an empty array: "*0").
        assert redis_server.command("KEYS", "other:q:*") == b"*0"
        assert redis_server.command("KEYS", "stompd:q:*") != b"*0"


@pytest_twisted.ensureDeferred
async def test_unreachable_redis_fails_start_after_the_timeout():
    store = RedisStore(RedisSettings(url=f"redis://127.0.0.1:{free_port()}/0", timeout=0.5), "n1", reactor)
    began = reactor.seconds()
    with pytest.raises(ConfigError, match=r"storage.redis: cannot reach Redis at redis://127.0.0.1:\d+/0"):
        await store.start()
    assert reactor.seconds() - began < 3


@pytest_twisted.ensureDeferred
async def test_redis_lost_and_back(tmp_path):
    server = RedisServer(tmp_path / "redis")
    try:
        await _lost_and_back(server)
    finally:
        server.stop()


async def _lost_and_back(server) -> None:
    store = await started(server, "n1", timeout=0.5)
    try:
        woken = []
        store.watch(woken.append)
        await store.enqueue(QUEUE, [message(1)])
        [held] = await store.reserve(QUEUE, 1, 0.0, DEFAULT_POLICY)
        server.kill()
        with pytest.raises(StorageError):
            await store.enqueue(QUEUE, [message(2)])
        # A consumer went while Redis was away: what it held is given back
        # once Redis is back, not left in flight under this living node.
        with pytest.raises(StorageError):
            await store.release(QUEUE, [delivery(held)], None)
        server.start()
        # Reconnected by itself, with back-off; what was stored is there.
        deadline = reactor.seconds() + 20
        while True:
            try:
                await store.enqueue(QUEUE, [message(3)])
                break
            except StorageError:
                assert reactor.seconds() < deadline
                await sleep(0.2)
        assert await wait_until(lambda: None in woken)
        assert await wait_until(lambda: not store._owed)
        back = await store.reserve(QUEUE, 5, 0.0, DEFAULT_POLICY)
        assert [(m.id, m.delivery_count) for m in back] == [("m1", 2), ("m3", 1)]
    finally:
        await store.stop()


@pytest_twisted.ensureDeferred
async def test_bindings_reach_other_nodes_and_outlive_them(redis_server):
    redis_server.flush()
    async with running(redis_server, "n1", "n2") as (n1, n2):
        heard = []
        n2.watch_bindings(lambda *notice: heard.append(notice))
        await n1.bind("/", "durable:c:s", "/topic/a.#")
        assert await wait_until(lambda: heard == [("/", "durable:c:s", "/topic/a.#")])
        await n1.unbind("/", "durable:c:s")
        assert await wait_until(lambda: heard[-1] == ("/", "durable:c:s", None))
        await n1.bind("/", "durable:c:t", "/topic/b")
    async with running(redis_server, "n3") as (later,):
        assert await later.bindings() == [("/", "durable:c:t", "/topic/b")]


@pytest_twisted.ensureDeferred
async def test_through_sentinel(redis_server, tmp_path):
    from tests.support.redis import RedisSentinel

    redis_server.flush()
    sentinel = RedisSentinel(tmp_path / "sentinel", redis_server)
    try:
        await _two_nodes_through(sentinel, redis_server)
    finally:
        sentinel.stop()


async def _two_nodes_through(sentinel, redis_server) -> None:
    options = {"sentinels": (f"127.0.0.1:{sentinel.port}",), "service": sentinel.service}
    async with running(redis_server, "n1", "n2", **options) as (n1, n2):
        work = []
        n2.watch(work.append)
        await n1.enqueue(QUEUE, [message(1)])
        assert await wait_until(lambda: work == [QUEUE])
        assert await ids(n2.reserve(QUEUE, 5, 0.0, DEFAULT_POLICY)) == ["m1"]


@pytest_twisted.ensureDeferred
async def test_over_a_unix_socket(tmp_path):
    server = RedisServer(tmp_path / "redis", unix_socket=True)
    try:
        store = RedisStore(RedisSettings(url=f"unix://{server.unix_socket}?db=2", timeout=2.0), "n1", reactor)
        await store.start()
        await store.enqueue(QUEUE, [message(1)])
        assert await ids(store.reserve(QUEUE, 5, 0.0, DEFAULT_POLICY)) == ["m1"]
        await store.stop()
        assert server.command("SELECT", "2") == b"+OK"
    finally:
        server.stop()


@pytest.mark.parametrize(
    "table, problem",
    [
        ({"url": "http://x"}, "url: expected redis://"),
        ({"url": "redis://h:port/0"}, "url: invalid port"),
        ({"url": "redis://h:1/zero"}, "url: expected redis://"),
        ({"url": "unix://relative?db=0"}, "url: expected unix:///path"),
        ({"urls": "redis://h/0"}, "urls: unknown key"),
        ({"timeout": "5"}, "timeout: expected a float"),
        ({"sentinels": [26379], "service": "m"}, "sentinels: expected a list of strings"),
        ({"timeout": 0}, "timeout: must be positive"),
        ({"key-prefix": ""}, "key-prefix: must not be empty"),
        ({"sentinels": ["nohost"], "service": "m"}, "sentinels: expected 'host:port'"),
        ({"sentinels": ["h:26379"]}, "service: required with sentinels"),
        ({"node-lease": 0.1}, "node-lease: must be positive"),
    ],
)
def test_settings_errors_name_the_key(table, problem):
    from stompd.storage.redis import parse_config

    with pytest.raises(ConfigError) as raised:
        parse_config(table)
    assert str(raised.value).startswith(problem)


def test_settings_are_read():
    from stompd.storage.redis import parse_config

    settings = parse_config({"url": "redis://:s3cret@db.example:6380/3", "key-prefix": "a:", "timeout": 2, "node-lease": 4})
    assert settings.address == {"host": "db.example", "port": 6380, "db": 3, "password": "s3cret"}
    assert (settings.key_prefix, settings.timeout, settings.node_lease) == ("a:", 2, 4)
    assert parse_config({}).address == {"host": "127.0.0.1", "port": 6379, "db": 0, "password": None}


@pytest_twisted.ensureDeferred
async def test_sentinel_failover_to_the_replica(tmp_path):
    """
    The master dies; Sentinel promotes its replica; the store finds the new
    master by itself, with what was replicated.
    """
    from tests.support.redis import RedisSentinel

    master = RedisServer(tmp_path / "master")
    replica = RedisServer(tmp_path / "replica", replica_of=master)
    sentinel = None
    try:
        sentinel = RedisSentinel(tmp_path / "sentinel", master)
        await _fail_over(master, replica, sentinel)
    finally:
        for server in (sentinel, replica, master):
            if server is not None:
                server.stop()


async def _fail_over(master, replica, sentinel) -> None:
    options = {"sentinels": (f"127.0.0.1:{sentinel.port}",), "service": sentinel.service, "timeout": 1.0}
    store = await started(master, "n1", **options)
    try:
        await store.enqueue(QUEUE, [message(1)])
        # Replication is asynchronous: wait until the replica has it.
        assert await wait_until(lambda: replica.command("HEXISTS", f"stompd:q:{{{QUEUE}}}:head", "m1") == b":1")
        master.kill()
        deadline = reactor.seconds() + 30
        while True:
            try:
                await store.enqueue(QUEUE, [message(2)])
                break
            except StorageError:
                assert reactor.seconds() < deadline, "no new master"
                await sleep(0.3)
        assert replica.command("ROLE").startswith(b"*3")  # a master answers with 3 items
        assert await ids(store.reserve(QUEUE, 5, 0.0, DEFAULT_POLICY)) == ["m1", "m2"]
    finally:
        await store.stop()
