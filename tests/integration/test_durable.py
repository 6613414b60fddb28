"""
Durable topic subscriptions on the default memory store, through stomp.py:
what is published while the subscriber is away waits for its reconnect.
"""

import uuid

import pytest

pytestmark = pytest.mark.integration


def test_durable_subscriber_reconnects_and_gets_what_it_missed(connect, subscribe):
    client_id = f"reports-{uuid.uuid4().hex[:6]}"
    durable = {"activemq.subscriptionName": "daily"}
    subscriber = connect(connect_headers={"client-id": client_id})
    subscribe(subscriber, "/topic/durable.reports.#", id="d", ack="client-individual", **durable)
    subscriber.disconnect()
    producer = connect()
    producer.send("/topic/durable.reports.eu", "missed", headers={"receipt": "sent"})
    producer.collector.wait_for_receipt("sent")
    again = connect(connect_headers={"client-id": client_id})
    subscribe(again, "/topic/durable.reports.#", id="d", ack="client-individual", **durable)
    assert again.collector.wait_for_bodies(1) == ["missed"]
    frame = again.collector.messages[0]
    assert frame.headers["destination"] == "/topic/durable.reports.eu"
    again.ack(frame.headers["ack"])
    again.unsubscribe("d", headers={**durable, "receipt": "gone"})
    again.collector.wait_for_receipt("gone")
