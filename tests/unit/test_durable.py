"""
Durable topic subscriptions on the in-memory harness: ActiveMQ's
(client-id + activemq.subscriptionName) and RabbitMQ's (durable:true).
"""

from stompd.testing.harness import connected_client, make_broker


def publish(broker, destination: str, *bodies: bytes) -> None:
    producer = connected_client(broker)
    for body in bodies:
        producer.send("SEND", {"destination": destination}, body)


def bodies(frames) -> list[bytes]:
    return [f.body for f in frames if f.command == "MESSAGE"]


ACTIVEMQ = {"activemq.subscriptionName": "news-feed"}
RABBITMQ = {"durable": "true", "auto-delete": "false"}


def test_activemq_durable_subscriber_gets_what_came_while_away():
    broker = make_broker()
    subscriber = connected_client(broker, **{"client-id": "c1"})
    subscriber.send("SUBSCRIBE", {"destination": "/topic/news.#", "id": "1", "receipt": "r", **ACTIVEMQ})
    assert [f.command for f in subscriber.frames()] == ["RECEIPT"]
    publish(broker, "/topic/news.eu", b"live")
    assert bodies(subscriber.frames()) == [b"live"]
    subscriber.disconnect()
    publish(broker, "/topic/news.eu", b"while away 1", b"while away 2")
    publish(broker, "/topic/sport", b"not matching")
    again = connected_client(broker, **{"client-id": "c1"})
    again.send("SUBSCRIBE", {"destination": "/topic/news.#", "id": "1", **ACTIVEMQ})
    frames = again.frames()
    assert bodies(frames) == [b"while away 1", b"while away 2"]
    # The topic, not the subscription's queue, is what the subscriber sees.
    assert {f.headers["destination"] for f in frames} == {"/topic/news.eu"}


def test_plain_unsubscribe_keeps_and_named_unsubscribe_removes():
    broker = make_broker()
    subscriber = connected_client(broker, **{"client-id": "c1"})
    subscriber.send("SUBSCRIBE", {"destination": "/topic/t", "id": "1", **ACTIVEMQ})
    subscriber.send("UNSUBSCRIBE", {"id": "1"})
    publish(broker, "/topic/t", b"kept")
    subscriber.send("SUBSCRIBE", {"destination": "/topic/t", "id": "2", **ACTIVEMQ})
    assert bodies(subscriber.frames()) == [b"kept"]
    subscriber.send("UNSUBSCRIBE", {"id": "2", **ACTIVEMQ})
    publish(broker, "/topic/t", b"gone")
    subscriber.send("SUBSCRIBE", {"destination": "/topic/t", "id": "3"})
    assert bodies(subscriber.frames()) == []


def test_a_later_connection_of_the_client_removes_an_inactive_subscription():
    broker = make_broker()
    first = connected_client(broker, **{"client-id": "c1"})
    first.send("SUBSCRIBE", {"destination": "/topic/t", "id": "1", **ACTIVEMQ})
    first.disconnect()
    publish(broker, "/topic/t", b"waiting")
    later = connected_client(broker, **{"client-id": "c1"})
    later.send("UNSUBSCRIBE", {"id": "1", "receipt": "removed", **ACTIVEMQ})
    assert [f.headers.get("receipt-id") for f in later.frames()] == ["removed"]
    later.send("SUBSCRIBE", {"destination": "/topic/t", "id": "1", **ACTIVEMQ})
    assert bodies(later.frames()) == []


def test_rabbitmq_durable_subscription_named_by_id():
    broker = make_broker()
    subscriber = connected_client(broker)
    subscriber.send("SUBSCRIBE", {"destination": "/topic/prices", "id": "prices-sub", "ack": "client-individual", **RABBITMQ})
    subscriber.disconnect()
    publish(broker, "/topic/prices", b"p1")
    again = connected_client(broker)
    again.send("SUBSCRIBE", {"destination": "/topic/prices", "id": "prices-sub", "ack": "client-individual", **RABBITMQ})
    [message] = again.frames()
    assert message.body == b"p1"
    again.send("ACK", {"id": message.headers["ack"]})
    again.send("UNSUBSCRIBE", {"id": "prices-sub", "durable": "true"})
    publish(broker, "/topic/prices", b"p2")
    again.send("SUBSCRIBE", {"destination": "/topic/prices", "id": "prices-sub", **RABBITMQ})
    assert bodies(again.frames()) == []


def test_auto_delete_or_not_durable_is_an_ordinary_subscription():
    broker = make_broker()
    subscriber = connected_client(broker)
    subscriber.send("SUBSCRIBE", {"destination": "/topic/x", "id": "1", "durable": "true", "auto-delete": "true"})
    subscriber.disconnect()
    publish(broker, "/topic/x", b"lost")
    again = connected_client(broker)
    again.send("SUBSCRIBE", {"destination": "/topic/x", "id": "1", **RABBITMQ})
    assert bodies(again.frames()) == []


def test_activemq_durable_without_client_id_is_refused():
    broker = make_broker()
    subscriber = connected_client(broker)
    subscriber.send("SUBSCRIBE", {"destination": "/topic/t", "id": "1", "receipt": "r", **ACTIVEMQ})
    [error] = subscriber.frames()
    assert error.command == "ERROR"
    assert error.headers["message"] == "client-id required"
    assert error.headers["receipt-id"] == "r"


def test_durable_subscription_is_bounded_like_a_queue():
    from stompd.config import Config, QueueConfig

    broker = make_broker(Config(queues=QueueConfig(high_water_mark=4)))
    subscriber = connected_client(broker, **{"client-id": "c1"})
    subscriber.send("SUBSCRIBE", {"destination": "/topic/t", "id": "1", **ACTIVEMQ})
    subscriber.disconnect()
    producer = connected_client(broker)
    for n in range(6):
        producer.send("SEND", {"destination": "/topic/t"}, b"%d" % n)
    # At the high-water mark the publisher's reads stop, as for a queue.
    assert producer.transport.producerState == "paused"
