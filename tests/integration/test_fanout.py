"""
The fanout connector with real stompd processes as upstreams, through
stomp.py: topics to every upstream, queue messages spread over them by
producer, the minAckCount quorum, and nodes fanning out to each other
without multiplying messages.
"""

import time

import pytest

from tests.support.broker import BrokerProcess, free_port, wait_for_log
from tests.support.clients import subscribe_with_receipt

pytestmark = pytest.mark.integration


def fanout_config(ports, options: str = "minAckCount=2", prefixes='["/topic/", "/queue/"]', extra: str = "") -> str:
    upstreams = ",".join(f"tcp://127.0.0.1:{port}" for port in ports)
    return f"""
[[connectors]]
name = "broadcast"
type = "fanout"
uri = "fanout://(static:({upstreams}))?{options}"
login = "guest"
passcode = "guest"
prefixes = {prefixes}
heart-beat = [1000, 1000]
{extra}
"""


@pytest.fixture
def brokers():
    started = []

    def start(directory, config: str = "", port: int | None = None) -> BrokerProcess:
        broker = BrokerProcess(directory, config, port=port)
        started.append(broker)
        return broker

    yield start
    for broker in started:
        broker.stop()
    for broker in started:
        assert "Traceback" not in broker.log, broker.log[-3000:]


@pytest.fixture
def fanout(tmp_path, brokers):
    def start(options: str = "minAckCount=2", extra: str = ""):
        upstreams = [brokers(tmp_path / f"upstream{n}") for n in range(2)]
        node = brokers(tmp_path / "fanout", fanout_config([u.port for u in upstreams], options, extra=extra))
        wait_for_log(node, "broadcast: connected to upstream", count=2)
        return node, upstreams

    return start


def test_topic_messages_reach_every_upstream_and_local_subscribers_once(fanout, clients):
    node, upstreams = fanout()
    subscribers = [clients(broker.port) for broker in (node, *upstreams)]
    for subscriber in subscribers:
        subscribe_with_receipt(subscriber, "/topic/news", id="n")
    producer = clients(node.port)
    producer.send("/topic/news", "extra", headers={"receipt": "r", "edition": "late"})
    producer.collector.wait_for_receipt("r")
    for subscriber in subscribers:
        assert subscriber.collector.wait_for_bodies(1, quiet=0.3) == ["extra"]
        assert subscriber.collector.messages[0].headers["edition"] == "late"


def test_queue_messages_go_to_one_upstream_each_by_producer(fanout, clients):
    node, upstreams = fanout()
    producers = [clients(node.port) for _ in range(2)]
    for n, producer in enumerate(producers):
        for m in range(10):
            producer.send("/queue/work", f"p{n}-{m}", headers={"receipt": f"r{m}"})
        producer.collector.wait_for_receipt("r9")
    got = []
    for upstream in upstreams:
        consumer = clients(upstream.port)
        subscribe_with_receipt(consumer, "/queue/work", id="w")
        consumer.collector.wait_for(lambda: len(consumer.collector.messages) >= 10)
        time.sleep(0.3)
        got.append(consumer.collector.bodies())
    # Each producer's messages on one upstream, in order; both used.
    assert sorted(got) == [[f"p{n}-{m}" for m in range(10)] for n in range(2)]
    local = clients(node.port)
    subscribe_with_receipt(local, "/queue/work", id="l")
    time.sleep(0.3)
    assert local.collector.bodies() == []


def test_fan_out_queues_sends_queue_messages_everywhere(fanout, clients):
    node, upstreams = fanout("minAckCount=2&fanOutQueues=true")
    producer = clients(node.port)
    producer.send("/queue/copies", "each", headers={"receipt": "r"})
    producer.collector.wait_for_receipt("r")
    for broker in (node, *upstreams):
        consumer = clients(broker.port)
        subscribe_with_receipt(consumer, "/queue/copies", id="c")
        assert consumer.collector.wait_for_bodies(1) == ["each"]


def test_min_ack_count_is_a_gate_and_a_quorum(fanout, clients, tmp_path, brokers):
    node, upstreams = fanout("minAckCount=2")
    upstreams[1].kill()
    wait_for_log(node, "broadcast: lost the connection to upstream")
    producer = clients(node.port)
    producer.send("/topic/gated", "refused", headers={"receipt": "r"})
    assert producer.collector.wait_for(lambda: producer.collector.errors)
    error = producer.collector.errors[0]
    assert error.headers["message"] == "connector broadcast: upstream not connected"
    assert error.headers["receipt-id"] == "r"
    assert "minAckCount" in error.body
    # Back on its port: reconnected with back-off, and forwarding again.
    brokers(tmp_path / "upstream1-again", port=upstreams[1].port)
    wait_for_log(node, "broadcast: connected to upstream", count=3)
    again = clients(node.port)
    again.send("/topic/gated", "accepted", headers={"receipt": "r2"})
    again.collector.wait_for_receipt("r2")


def test_with_min_ack_count_one_a_single_upstream_is_enough(fanout, clients):
    node, upstreams = fanout("minAckCount=1")
    upstreams[0].kill()
    wait_for_log(node, "broadcast: lost the connection to upstream")
    consumer = clients(upstreams[1].port)
    subscribe_with_receipt(consumer, "/topic/one", id="o")
    producer = clients(node.port)
    producer.send("/topic/one", "still", headers={"receipt": "r"})
    producer.collector.wait_for_receipt("r")
    assert consumer.collector.wait_for_bodies(1) == ["still"]


def test_three_nodes_fanning_out_to_each_other_deliver_each_message_once(tmp_path, brokers, clients):
    ports = [free_port() for _ in range(3)]
    nodes = []
    for n, port in enumerate(ports):
        others = [p for p in ports if p != port]
        nodes.append(brokers(tmp_path / f"node{n}", fanout_config(others, "minAckCount=2", '["/topic/"]'), port=port))
    for node in nodes:
        wait_for_log(node, "broadcast: connected to upstream", count=2)
    subscribers = [clients(node.port) for node in nodes]
    for subscriber in subscribers:
        subscribe_with_receipt(subscriber, "/topic/mesh.#", id="m")
    for n, node in enumerate(nodes):
        producer = clients(node.port)
        producer.send("/topic/mesh.a", f"from {n}", headers={"receipt": "r"})
        producer.collector.wait_for_receipt("r")
    for subscriber in subscribers:
        assert sorted(subscriber.collector.wait_for_bodies(3, quiet=1.0)) == ["from 0", "from 1", "from 2"]


def test_a_fanout_finds_its_upstreams_through_redis_discovery(tmp_path, brokers, clients):
    from tests.support.redis import RedisServer

    redis = RedisServer(tmp_path / "redis")
    try:
        directory = f"redis://127.0.0.1:{redis.port}/0"
        upstreams = []
        for n in range(2):
            port = free_port()
            advertise = f'[discovery]\nadvertise = ["{directory}"]\nadvertise-uri = "tcp://127.0.0.1:{port}"\n'
            upstreams.append(brokers(tmp_path / f"upstream{n}", advertise, port=port))
        config = fanout_config([], prefixes='["/topic/"]').replace(
            "fanout://(static:())?minAckCount=2", f"fanout://({directory})?minAckCount=2"
        )
        node = brokers(tmp_path / "fanout", config)
        wait_for_log(node, "broadcast: connected to upstream", count=2)
        subscribers = [clients(upstream.port) for upstream in upstreams]
        for subscriber in subscribers:
            subscribe_with_receipt(subscriber, "/topic/found", id="f")
        producer = clients(node.port)
        producer.send("/topic/found", "hello", headers={"receipt": "r"})
        producer.collector.wait_for_receipt("r")
        for subscriber in subscribers:
            assert subscriber.collector.wait_for_bodies(1) == ["hello"]
        # A node that stops withdraws its advertisement: the fanout lets it go.
        upstreams[0].stop()
        wait_for_log(node, "broadcast: upstream tcp://127.0.0.1:%d gone" % upstreams[0].port)
    finally:
        redis.stop()


def test_an_upstream_killed_and_restarted_under_load_loses_no_receipted_message(tmp_path, brokers, clients):
    from tests.support.redis import RedisServer

    redis = RedisServer(tmp_path / "redis")
    try:
        ports = [free_port(), free_port()]

        def upstream_config(n: int) -> str:
            return f'[storage]\nbackend = "redis"\n[storage.redis]\nurl = "{redis.url}"\nkey-prefix = "u{n}:"\n'

        upstreams = [brokers(tmp_path / f"upstream{n}", upstream_config(n), port=port) for n, port in enumerate(ports)]
        node = brokers(tmp_path / "fanout", fanout_config(ports, "minAckCount=1&initialReconnectDelay=50"))
        wait_for_log(node, "broadcast: connected to upstream", count=2)
        receipted, attempts = set(), 0
        producer = clients(node.port)
        for n in range(400):
            if n == 150:
                upstreams[0].kill()
            if n == 250:
                upstreams[0] = brokers(tmp_path / "upstream0-again", upstream_config(0), port=ports[0])
            while True:
                attempts += 1
                assert attempts < 1000, "too many resends"
                producer.send("/queue/load", f"m{n}", headers={"receipt": f"r{n}"})
                if producer.collector.wait_for(
                    lambda: f"r{n}" in producer.collector.receipts or producer.collector.errors, timeout=10
                ) and f"r{n}" in producer.collector.receipts:
                    receipted.add(f"m{n}")
                    break
                # Refused (the upstream it went to died before confirming):
                # a new connection, and the same message again.
                producer = clients(node.port)
        # The restarted upstream is connected to again.
        wait_for_log(node, "broadcast: connected to upstream", count=3)
        consumed = []
        for upstream in upstreams:
            consumer = clients(upstream.port)
            subscribe_with_receipt(consumer, "/queue/load", id="c", ack="auto")
            time.sleep(1.5)
            consumed += consumer.collector.bodies()
        assert len(receipted) == 400
        assert receipted <= set(consumed)
    finally:
        redis.stop()
