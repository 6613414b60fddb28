"""
Several real stompd processes on one real redis-server acting as one
broker, a stompd killed with SIGKILL, and Redis itself killed and restarted.
"""

import time
import uuid

import pytest

from tests.support.broker import BrokerProcess
from tests.support.clients import subscribe_with_receipt
from tests.support.redis import RedisServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


def node_config(url: str, node_id: str = "", extra: str = "") -> str:
    node = f'node-id = "{node_id}"\n' if node_id else ""
    return (
        f'{node}[storage]\nbackend = "redis"\n'
        f'[storage.redis]\nurl = "{url}"\ntimeout = 1.0\nnode-lease = 2.0\n{extra}'
    )


def test_key_prefixes_keep_brokers_apart_and_node_ids_name_messages(redis_server, start_broker, clients):
    redis_server.flush()
    ours = start_broker(node_config(redis_server.url, "alpha", 'key-prefix = "ours:"\n'))
    theirs = start_broker(node_config(redis_server.url, "beta", 'key-prefix = "theirs:"\n'))
    watcher = clients(theirs.port)
    subscribe_with_receipt(watcher, "/topic/shared", id="t")
    subscribe_with_receipt(watcher, "/queue/shared", id="q")
    reader = clients(ours.port)
    subscribe_with_receipt(reader, "/topic/shared", id="t")
    producer = clients(ours.port)
    send_confirmed(producer, "/topic/shared", ["topic message"])
    send_confirmed(producer, "/queue/shared", ["queue message"])
    assert reader.collector.wait_for_bodies(2) == ["topic message", "last"]
    assert all(f.headers["message-id"].startswith("alpha-") for f in reader.collector.messages)
    time.sleep(0.5)
    assert watcher.collector.messages == []
    keys = redis_server.command("KEYS", "theirs:q:*")
    # Nothing of "ours" under the other prefix (an empty array reply).
    assert keys == b"*0"


@pytest.fixture
def start_node(redis_server, start_broker):
    """
    Start stompd nodes on the module's Redis; all stopped at teardown.
    """

    def start(node_id: str = "") -> BrokerProcess:
        return start_broker(node_config(redis_server.url, node_id))

    return start


def send_confirmed(conn, destination: str, bodies, **headers) -> None:
    for body in bodies:
        conn.send(destination, body, headers=headers)
    receipt = f"sent-{uuid.uuid4().hex[:8]}"
    conn.send(destination, "last", headers={**headers, "receipt": receipt})
    conn.collector.wait_for_receipt(receipt)


def test_topic_messages_reach_every_node_once_with_wildcards(redis_server, start_node, clients):
    redis_server.flush()
    nodes = [start_node() for _ in range(3)]
    subscribers = []
    for node, pattern in zip(nodes, ["/topic/prices.#", "/topic/prices.*", "/topic/prices.eu"]):
        conn = clients(node.port)
        subscribe_with_receipt(conn, pattern)
        subscribers.append(conn)
    # A SUBSCRIBE's receipt means it is in force everywhere: publish at once.
    for n, node in enumerate(nodes[:2]):
        producer = clients(node.port)
        for m in range(5):
            producer.send("/topic/prices.eu", f"{n}-{m}", headers={"receipt": f"r{m}"})
        producer.collector.wait_for_receipt("r4")
    expected = sorted(f"{n}-{m}" for n in range(2) for m in range(5))
    for conn in subscribers:
        assert sorted(conn.collector.wait_for_bodies(10, quiet=0.3)) == expected
    # Not matching: nobody gets it.
    clients(nodes[2].port).send("/topic/prices.eu.detail", "deep", headers={"receipt": "d"})
    time.sleep(0.3)
    assert [len(conn.collector.messages) for conn in subscribers] == [11, 10, 10]


def test_queue_messages_go_to_exactly_one_consumer_across_nodes(redis_server, start_node, clients):
    redis_server.flush()
    nodes = [start_node() for _ in range(3)]
    consumers = []
    for node in nodes:
        conn = clients(node.port)
        subscribe_with_receipt(conn, "/queue/jobs", ack="client-individual", **{"prefetch-count": "10"})
        consumers.append(conn)
    for n, node in enumerate(nodes):
        send_confirmed(clients(node.port), "/queue/jobs", [f"{n}-{m}" for m in range(100)])
    total = 303

    def received():
        return sum(len(conn.collector.messages) for conn in consumers)

    # Consumers ACK as they go, so each keeps getting work.
    acked = set()
    deadline = time.monotonic() + 20
    while received() < total and time.monotonic() < deadline:
        for conn in consumers:
            for frame in list(conn.collector.messages):
                if frame.headers["ack"] not in acked:
                    acked.add(frame.headers["ack"])
                    conn.ack(frame.headers["ack"])
        time.sleep(0.02)
    time.sleep(0.5)
    bodies = [frame.body for conn in consumers for frame in conn.collector.messages]
    assert len(bodies) == total, len(bodies)
    assert len(set(bodies)) == 301  # every body once, and three "last"
    assert all(len(conn.collector.messages) > 0 for conn in consumers), [len(c.collector.messages) for c in consumers]
    # Nobody saw a message another had: every delivery was the first.
    assert {frame.headers["delivery-count"] for conn in consumers for frame in conn.collector.messages} == {"1"}


def test_a_killed_node_s_unacked_messages_come_back_elsewhere(redis_server, start_node, clients):
    redis_server.flush()
    survivor, doomed = start_node(), start_node()
    holder = clients(doomed.port)
    subscribe_with_receipt(holder, "/queue/held", ack="client-individual")
    send_confirmed(clients(survivor.port), "/queue/held", ["a", "b"])
    assert holder.collector.wait_for_bodies(3) == ["a", "b", "last"]
    doomed.kill()
    taker = clients(survivor.port)
    subscribe_with_receipt(taker, "/queue/held", ack="client-individual")
    # The node lease is 2 s; no visibility timeout is set.
    assert taker.collector.wait_for(lambda: len(taker.collector.messages) == 3, timeout=10)
    frames = taker.collector.messages
    assert [f.body for f in frames] == ["a", "b", "last"]
    assert all(f.headers["redelivered"] == "true" and f.headers["delivery-count"] == "2" for f in frames)


def test_receipted_sends_survive_kill_9(redis_server, start_node, clients):
    redis_server.flush()
    node = start_node()
    producer = clients(node.port)
    for n in range(300):
        producer.send("/queue/durable", f"m{n}", headers={"receipt": f"r{n}", "persistent": "true"})
        if n == 150:
            # Mid-stream: some confirmed, more on their way.
            assert producer.collector.wait_for(lambda: len(producer.collector.receipts) >= 20)
        if n == 200:
            node.kill()
            break
    confirmed = set(producer.collector.receipts)
    receipted = [f"m{n}" for n in range(200) if f"r{n}" in confirmed]
    assert receipted, "nothing was confirmed before the kill"
    restarted = start_node()
    consumer = clients(restarted.port)
    # Auto ack: no prefetch limit holds back what there is.
    subscribe_with_receipt(consumer, "/queue/durable", ack="auto")
    consumer.collector.wait_for_bodies(len(receipted), quiet=1.0)
    bodies = consumer.collector.bodies()
    assert set(receipted) <= set(bodies)
    assert len(bodies) == len(set(bodies)), "a message was delivered twice"


def test_unacked_messages_survive_kill_9_and_come_back_redelivered(redis_server, start_node, clients):
    redis_server.flush()
    node = start_node(node_id="a")
    send_confirmed(clients(node.port), "/queue/pending", ["x"])
    holder = clients(node.port)
    subscribe_with_receipt(holder, "/queue/pending", ack="client-individual")
    holder.collector.wait_for_bodies(2)
    node.kill()
    # The same node id, restarted: it takes back what it held.
    again = start_node(node_id="a")
    consumer = clients(again.port)
    subscribe_with_receipt(consumer, "/queue/pending", ack="client-individual")
    assert consumer.collector.wait_for_bodies(2, quiet=0.3) == ["x", "last"]
    assert [f.headers["delivery-count"] for f in consumer.collector.messages] == ["2", "2"]
    assert all(f.headers["redelivered"] == "true" for f in consumer.collector.messages)


def test_temp_queue_replies_and_user_queues_cross_nodes(redis_server, start_node, clients):
    redis_server.flush()
    a, b = start_node(), start_node()
    server = clients(b.port)
    subscribe_with_receipt(server, "/queue/rpc", ack="client-individual")
    requester = clients(a.port)
    requester.send("/queue/rpc", "ping", headers={"reply-to": "/temp-queue/answers", "receipt": "asked"})
    requester.collector.wait_for_receipt("asked")
    [request] = server.collector.wait_for_bodies(1)
    frame = server.collector.messages[0]
    server.send(frame.headers["reply-to"], "pong", headers={"receipt": "answered"})
    server.collector.wait_for_receipt("answered")
    assert requester.collector.wait_for_bodies(1) == ["pong"]
    # Spring's relay: /user/queue/greetings becomes /queue/greetings-user<session>.
    user = clients(a.port)
    subscribe_with_receipt(user, "/queue/greetings-userabc123")
    clients(b.port).send("/queue/greetings-userabc123", "hello", headers={"receipt": "g"})
    assert user.collector.wait_for_bodies(1) == ["hello"]


def test_redis_killed_and_restarted_under_load(tmp_path, clients):
    redis = RedisServer(tmp_path / "redis")
    node = BrokerProcess(tmp_path, node_config(redis.url))
    try:
        confirmed = []
        producer = clients(node.port)
        n = 0
        killed = restarted = False
        deadline = time.monotonic() + 60
        while len(confirmed) < 300 and time.monotonic() < deadline:
            n += 1
            body = f"m{n}"
            if n == 100:
                redis.kill()
                killed = True
            if killed and not restarted and n == 110:
                redis.start()
                restarted = True
            try:
                if not producer.is_connected():
                    producer = clients(node.port)
                producer.send("/queue/load", body, headers={"receipt": body})
                if producer.collector.wait_for(lambda: body in producer.collector.receipts or producer.collector.errors,
                                               timeout=5):
                    if body in producer.collector.receipts:
                        confirmed.append(body)
            except Exception:
                time.sleep(0.2)
            if producer.collector.errors:
                # The broker said it could not store: no receipt, no loss.
                assert producer.collector.errors[0].headers["message"] == "storage unavailable"
                time.sleep(0.2)
                try:
                    producer.disconnect()
                except Exception:
                    pass
                producer = clients(node.port)
        assert killed and restarted
        assert len(confirmed) >= 300
        assert node.process.poll() is None, "the broker must stay up"
        consumer = clients(node.port)
        subscribe_with_receipt(consumer, "/queue/load", ack="auto")
        consumer.collector.wait_for_bodies(len(confirmed), quiet=0.5)
        assert set(confirmed) <= set(consumer.collector.bodies())
    finally:
        node.stop()
        redis.stop()


def test_unreachable_redis_stops_start_up_with_one_line(tmp_path):
    import subprocess

    from tests.support.broker import TWISTD, free_port

    config = tmp_path / "stompd.toml"
    config.write_text(node_config(f"redis://127.0.0.1:{free_port()}/0"))
    began = time.monotonic()
    ran = subprocess.run(
        [TWISTD, "-n", "--pidfile=", "stompd", "--config", str(config), "--listen", f"tcp:{free_port()}:interface=127.0.0.1",
         "--listen-ws", f"tcp:{free_port()}:interface=127.0.0.1"],
        capture_output=True, text=True, timeout=30, cwd=tmp_path,
    )
    output = ran.stdout + ran.stderr
    assert ran.returncode != 0, output
    assert time.monotonic() - began < 15
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if "cannot reach Redis" in line]
    assert len(lines) == 1, output
    assert "storage.redis" in lines[0]


@pytest.mark.parametrize(
    "connect_headers, subscribe_headers",
    [
        ({"client-id": "reporting"}, {"activemq.subscriptionName": "daily"}),
        ({}, {"durable": "true", "auto-delete": "false"}),
    ],
    ids=["activemq", "rabbitmq"],
)
def test_a_durable_subscriber_comes_back_through_another_node_after_restarts(
    redis_server, start_node, clients, connect_headers, subscribe_headers
):
    redis_server.flush()
    a, b = start_node(), start_node()
    subscriber = clients(a.port, connect_headers=connect_headers)
    subscribe_with_receipt(subscriber, "/topic/reports.#", id="daily-sub", ack="client-individual", **subscribe_headers)
    subscriber.disconnect()
    send_confirmed(clients(b.port), "/topic/reports.eu", ["r1", "r2"])
    a.stop()
    b.stop()
    c = start_node()
    again = clients(c.port, connect_headers=connect_headers)
    subscribe_with_receipt(again, "/topic/reports.#", id="daily-sub", ack="client-individual", **subscribe_headers)
    assert again.collector.wait_for_bodies(3, quiet=0.3) == ["r1", "r2", "last"]
    for frame in again.collector.messages:
        again.ack(frame.headers["ack"])
    # Removed for good, the way each broker's clients say it.
    receipt = f"gone-{uuid.uuid4().hex[:6]}"
    again.unsubscribe("daily-sub", headers={**subscribe_headers, "receipt": receipt} if "durable" in subscribe_headers
                      else {"activemq.subscriptionName": "daily", "receipt": receipt})
    again.collector.wait_for_receipt(receipt)
    send_confirmed(clients(c.port), "/topic/reports.eu", ["after"])
    later = clients(c.port, connect_headers=connect_headers)
    subscribe_with_receipt(later, "/topic/reports.#", id="daily-sub", ack="client-individual", **subscribe_headers)
    time.sleep(0.5)
    assert later.collector.bodies() == []


def test_bursts_of_sends_and_acks_in_one_write_cross_nodes_once_each(redis_server, start_node, raw):
    """
    A client that writes many frames at once has them handed to Redis
    together: every SEND of the burst is stored before the RECEIPT of the
    frame after it, and every ACK of a burst before the DISCONNECT's.
    """
    redis_server.flush()
    first, second = start_node(), start_node()
    queue = f"/queue/burst.{uuid.uuid4().hex[:8]}"
    producer = raw(port=first.port)
    assert producer.connect().command == "CONNECTED"
    burst = b"".join(b"SEND\ndestination:%s\n\n%d\x00" % (queue.encode(), n) for n in range(200))
    producer.send(burst + b"SEND\ndestination:%s\nreceipt:sent\n\nlast\x00" % queue.encode())
    receipt = producer.read_frame()
    assert (receipt.command, receipt.headers.get("receipt-id")) == ("RECEIPT", "sent")
    consumer = raw(port=second.port)
    assert consumer.connect().command == "CONNECTED"
    consumer.send_frame("SUBSCRIBE", {"id": "0", "destination": queue, "ack": "client-individual", "prefetch-count": "0"})
    delivered = [consumer.read_frame() for _ in range(201)]
    assert [f.body for f in delivered] == [b"%d" % n for n in range(200)] + [b"last"]
    consumer.send(
        b"".join(b"ACK\nid:%s\n\n\x00" % f.headers["ack"].encode() for f in delivered)
        + b"DISCONNECT\nreceipt:bye\n\n\x00"
    )
    receipt = consumer.read_frame()
    assert (receipt.command, receipt.headers.get("receipt-id")) == ("RECEIPT", "bye")
    # Acknowledged and gone, on every node.
    assert redis_server.command("ZCARD", f"stompd:q:{{{queue}}}:ready") == b":0"
    assert redis_server.command("HLEN", f"stompd:q:{{{queue}}}:flight") == b":0"
    assert redis_server.command("HLEN", f"stompd:q:{{{queue}}}:body") == b":0"
