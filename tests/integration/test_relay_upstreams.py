"""
The relay connector in front of real RabbitMQ (rabbitmq_stomp) and
ActiveMQ upstreams, through stomp.py: what Spring users who already run
one of them do.
"""

import pytest

from tests.integration.test_relay import CONNECTED, relay_config
from tests.support.broker import BrokerProcess, wait_for_log
from tests.support.clients import subscribe_with_receipt
from tests.support.refbrokers import ReferenceBroker

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=["rabbitmq", "activemq"])
def upstream(request, tmp_path_factory):
    broker = ReferenceBroker(request.param, tmp_path_factory.mktemp(request.param))
    yield broker
    broker.stop()


@pytest.fixture
def relay(upstream, tmp_path):
    # RabbitMQ's own destinations too: /exchange/EXCHANGE/KEY.
    extra = 'prefixes = ["/topic/ext.", "/queue/ext.", "/exchange/"]' if upstream.name == "rabbitmq" else ""
    config = relay_config(upstream.port)
    if extra:
        config = config.replace('prefixes = ["/topic/ext.", "/queue/ext."]', extra)
    node = BrokerProcess(tmp_path / "relay", config)
    wait_for_log(node, CONNECTED)
    yield node
    node.stop()
    assert "Traceback" not in node.log


def test_sends_with_receipts_reach_upstream_consumers(upstream, relay, clients, unique):
    queue = unique("/queue/ext.orders.")
    consumer = clients(upstream.port, vhost="/")
    subscribe_with_receipt(consumer, queue, "1")
    producer = clients(relay.port)
    for n in range(10):
        producer.send(queue, f"order {n}", headers={"receipt": f"r{n}", "region": "eu"})
    for n in range(10):
        producer.collector.wait_for_receipt(f"r{n}")
    assert consumer.collector.wait_for_bodies(10) == [f"order {n}" for n in range(10)]
    assert consumer.collector.messages[0].headers["region"] == "eu"


def test_relay_topic_subscribers_get_upstream_messages(upstream, relay, clients, unique):
    topic = unique("/topic/ext.news.")
    subscriber = clients(relay.port)
    subscribe_with_receipt(subscriber, topic, "n")
    publisher = clients(upstream.port, vhost="/")
    publisher.send(topic, "headline", headers={"receipt": "t", "lang": "en"})
    publisher.collector.wait_for_receipt("t")
    assert subscriber.collector.wait_for_bodies(1) == ["headline"]
    assert subscriber.collector.messages[0].headers["lang"] == "en"


def test_client_acks_go_upstream(upstream, relay, clients, unique):
    queue = unique("/queue/ext.jobs.")
    publisher = clients(upstream.port, vhost="/")
    for body in ("one", "two"):
        publisher.send(queue, body, headers={"receipt": body})
    publisher.collector.wait_for_receipt("two")
    consumer = clients(relay.port)
    subscribe_with_receipt(consumer, queue, "w", ack="client-individual")
    assert consumer.collector.wait_for_bodies(2) == ["one", "two"]
    consumer.ack(consumer.collector.messages[0].headers["ack"], receipt="acked")
    consumer.collector.wait_for_receipt("acked")
    consumer.disconnect()
    again = clients(upstream.port, vhost="/")
    subscribe_with_receipt(again, queue, "w2", ack="client-individual")
    assert again.collector.wait_for_bodies(1, quiet=1.0) == ["two"]


@pytest.mark.parametrize("upstream", ["rabbitmq"], indirect=True)
def test_rabbitmq_exchange_destinations_pass_through(upstream, relay, clients, unique):
    destination = unique("/exchange/amq.topic/prices.")
    subscriber = clients(relay.port)
    subscribe_with_receipt(subscriber, destination, "p")
    producer = clients(relay.port)
    producer.send(destination, "42", headers={"receipt": "p"})
    producer.collector.wait_for_receipt("p")
    assert subscriber.collector.wait_for_bodies(1) == ["42"]
