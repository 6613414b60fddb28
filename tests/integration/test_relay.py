"""
The relay connector between two real stompd processes, through stomp.py:
a relay node whose /topic/ext. and /queue/ext. destinations live on an
upstream node.
"""

import time

import pytest

from tests.support.broker import BrokerProcess, wait_for_log
from tests.support.clients import subscribe_with_receipt

pytestmark = pytest.mark.integration


def relay_config(upstream_port: int, extra: str = "") -> str:
    return f"""
[[connectors]]
name = "up"
type = "relay"
uri = "tcp://127.0.0.1:{upstream_port}"
login = "guest"
passcode = "guest"
prefixes = ["/topic/ext.", "/queue/ext."]
heart-beat = [1000, 1000]
{extra}
"""


CONNECTED = "up: connected to upstream"


@pytest.fixture
def nodes(tmp_path):
    started = []

    def start(extra: str = ""):
        upstream = BrokerProcess(tmp_path / "upstream")
        started.append(upstream)
        relay = BrokerProcess(tmp_path / "relay", relay_config(upstream.port, extra))
        started.append(relay)
        wait_for_log(relay, CONNECTED)
        return upstream, relay

    yield start
    for broker in started:
        broker.stop()
    for broker in started:
        assert "Traceback" not in broker.log, broker.log


def test_sends_reach_the_upstream_and_their_receipts_wait_for_it(nodes, clients):
    upstream, relay = nodes()
    consumer = clients(upstream.port)
    subscribe_with_receipt(consumer, "/queue/ext.orders", "1")
    producer = clients(relay.port)
    for n in range(20):
        producer.send("/queue/ext.orders", f"order {n}", headers={"receipt": f"r{n}", "region": "eu:west"})
    for n in range(20):
        producer.collector.wait_for_receipt(f"r{n}")
    assert consumer.collector.wait_for_bodies(20) == [f"order {n}" for n in range(20)]
    assert consumer.collector.messages[0].headers["region"] == "eu:west"
    assert producer.collector.errors == []


def test_relay_subscribers_get_upstream_messages_with_their_headers(nodes, clients):
    upstream, relay = nodes()
    first, second = clients(relay.port), clients(relay.port)
    subscribe_with_receipt(first, "/topic/ext.news", "a")
    subscribe_with_receipt(second, "/topic/ext.news", "b")
    subscribe_with_receipt(second, "/queue/ext.work", "q", ack="auto")
    publisher = clients(upstream.port)
    publisher.send("/topic/ext.news", "headline", headers={"receipt": "t", "lang": "en"})
    publisher.send("/queue/ext.work", "task", headers={"receipt": "q"})
    publisher.collector.wait_for_receipt("q")
    assert first.collector.wait_for_bodies(1) == ["headline"]
    assert sorted(second.collector.wait_for_bodies(2)) == ["headline", "task"]
    news = first.collector.messages[0]
    assert news.headers["lang"] == "en"
    assert news.headers["destination"] == "/topic/ext.news"
    assert news.headers["subscription"] == "a"


def test_acks_go_upstream_and_what_was_not_acked_comes_back_there(nodes, clients):
    upstream, relay = nodes()
    publisher = clients(upstream.port)
    for body in ("one", "two"):
        publisher.send("/queue/ext.jobs", body, headers={"receipt": body})
    publisher.collector.wait_for_receipt("two")
    consumer = clients(relay.port)
    subscribe_with_receipt(consumer, "/queue/ext.jobs", "w", ack="client-individual")
    assert consumer.collector.wait_for_bodies(2) == ["one", "two"]
    acked = consumer.collector.messages[0]
    consumer.ack(acked.headers["ack"], receipt="acked")
    consumer.collector.wait_for_receipt("acked")
    consumer.disconnect()
    # The ACK went upstream; the unacknowledged one is given to the next
    # consumer there.
    again = clients(upstream.port)
    subscribe_with_receipt(again, "/queue/ext.jobs", "w2", ack="client-individual")
    assert again.collector.wait_for_bodies(1, quiet=0.5) == ["two"]
    assert again.collector.messages[0].headers.get("redelivered") == "true"


def test_while_the_upstream_is_down_sends_get_an_error_and_subscribers_resume(nodes, clients, tmp_path):
    upstream, relay = nodes()
    subscriber = clients(relay.port)
    subscribe_with_receipt(subscriber, "/topic/ext.ticks", "t")
    upstream.kill()
    wait_for_log(relay, "up: lost the connection to upstream")
    producer = clients(relay.port)
    producer.send("/queue/ext.x", "lost?", headers={"receipt": "down"})
    assert producer.collector.wait_for(lambda: producer.collector.errors)
    error = producer.collector.errors[0]
    assert error.headers["message"] == "connector up: upstream not connected"
    assert error.headers["receipt-id"] == "down"
    # A local destination still works meanwhile.
    local = clients(relay.port)
    local.send("/queue/local", "here", headers={"receipt": "local"})
    local.collector.wait_for_receipt("local")
    restarted = BrokerProcess(tmp_path / "upstream-again", port=upstream.port)
    try:
        wait_for_log(relay, CONNECTED, count=2)
        publisher = clients(restarted.port)
        # The relay subscribed again on connecting: poll until it has.
        deadline = time.monotonic() + 10
        while not subscriber.collector.messages and time.monotonic() < deadline:
            publisher.send("/topic/ext.ticks", "tick", headers={"receipt": "tick"})
            time.sleep(0.2)
        assert subscriber.collector.bodies()[:1] == ["tick"]
    finally:
        restarted.stop()


def test_with_a_buffer_a_send_waits_for_the_upstream_to_come_back(nodes, clients, tmp_path):
    upstream, relay = nodes("buffer = 10\nsend-timeout = 20.0\n")
    upstream.kill()
    wait_for_log(relay, "up: lost the connection to upstream")
    producer = clients(relay.port)
    producer.send("/queue/ext.held", "waited", headers={"receipt": "held"})
    time.sleep(0.5)
    assert "held" not in producer.collector.receipts
    restarted = BrokerProcess(tmp_path / "upstream-again", port=upstream.port)
    try:
        producer.collector.wait_for_receipt("held")
        consumer = clients(restarted.port)
        subscribe_with_receipt(consumer, "/queue/ext.held", "c")
        assert consumer.collector.wait_for_bodies(1) == ["waited"]
    finally:
        restarted.stop()


def test_overlapping_prefixes_stop_start_up_naming_the_connector(tmp_path):
    config = relay_config(1) + relay_config(1).replace('name = "up"', 'name = "other"').replace(
        '["/topic/ext.", "/queue/ext."]', '["/queue/"]'
    )
    with pytest.raises(RuntimeError) as raised:
        BrokerProcess(tmp_path, config)
    assert "connectors.other.prefixes: '/queue/' overlaps '/queue/ext.' of connector 'up'" in str(raised.value)


def test_tls_upstreams_are_verified(tmp_path, self_signed_certificate, free_port, clients):
    key_path, cert_path = self_signed_certificate
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    (trusted / "upstream.pem").write_bytes(cert_path.read_bytes())
    ssl_port = free_port()
    listen = f"ssl:{ssl_port}:interface=127.0.0.1:privateKey={key_path}:certKey={cert_path}"
    upstream = BrokerProcess(tmp_path / "upstream", args=("--listen", listen))
    relays = []
    try:
        # Its certificate trusted, and its name checked: it connects.
        good = relay_config(0).replace(
            'uri = "tcp://127.0.0.1:0"', f'uri = "tls:host=localhost:port={ssl_port}:trustRoots={trusted}"'
        )
        relays.append(BrokerProcess(tmp_path / "trusting", good))
        wait_for_log(relays[0], CONNECTED)
        consumer = clients(upstream.port)
        subscribe_with_receipt(consumer, "/queue/ext.tls", id="t")
        producer = clients(relays[0].port)
        producer.send("/queue/ext.tls", "sealed", headers={"receipt": "r"})
        producer.collector.wait_for_receipt("r")
        assert consumer.collector.wait_for_bodies(1) == ["sealed"]
        # ssl:// checks against the system's roots: a self-signed upstream
        # is refused, and SENDs get an ERROR.
        strict = relay_config(0).replace('uri = "tcp://127.0.0.1:0"', f'uri = "ssl://localhost:{ssl_port}"')
        relays.append(BrokerProcess(tmp_path / "strict", strict))
        time.sleep(1.0)
        assert CONNECTED not in relays[1].log
        refused = clients(relays[1].port)
        refused.send("/queue/ext.tls", "not sent", headers={"receipt": "n"})
        assert refused.collector.wait_for(lambda: refused.collector.errors)
        assert refused.collector.errors[0].headers["message"] == "connector up: upstream not connected"
    finally:
        for relay in relays:
            relay.stop()
        upstream.stop()
