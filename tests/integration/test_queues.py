"""
Queues through a real stomp.py client: each message to one consumer, in
turn; messages kept until somebody subscribes; auto-deleted user queues.
"""

import time

import pytest


@pytest.mark.parametrize("consumers", [2, 3])
def test_each_message_to_one_consumer_in_turn(connect, subscribe, unique, send_all, consumers):
    queue = unique("/queue/work.")
    conns = [connect() for _ in range(consumers)]
    for n, conn in enumerate(conns):
        subscribe(conn, queue, id=f"c{n}")
    producer = connect()
    total = 6 * consumers
    send_all(producer, queue, [str(i) for i in range(total)])
    assert conns[0].collector.wait_for(lambda: sum(len(c.collector.messages) for c in conns) >= total)
    time.sleep(0.1)
    got = [[int(body) for body in conn.collector.bodies()] for conn in conns]
    assert sorted(i for mine in got for i in mine) == list(range(total)), got
    for mine in got:
        # Round-robin: every consumer gets its share, each the next after
        # the previous consumer's.
        assert len(mine) == 6, got
        assert mine == list(range(mine[0], total, consumers)), got


def test_messages_wait_for_a_subscriber(connect, subscribe, unique, send_all):
    queue = unique("/queue/waiting.")
    producer = connect()
    send_all(producer, queue, [f"m{i}" for i in range(10)], **{"x-kind": "kept"})
    time.sleep(0.1)
    consumer = connect()
    subscribe(consumer, queue)
    assert consumer.collector.wait_for(lambda: len(consumer.collector.messages) == 10)
    assert consumer.collector.bodies() == [f"m{i}" for i in range(10)]
    for message in consumer.collector.messages:
        assert message.headers["destination"] == queue
        assert message.headers["x-kind"] == "kept"
        assert "redelivered" not in message.headers


def test_queue_created_by_subscribe_gets_later_messages(connect, subscribe, unique, send_all):
    queue = unique("/queue/made-by-subscribe.")
    consumer = connect()
    subscribe(consumer, queue)
    producer = connect()
    send_all(producer, queue, ["a", "b"])
    assert consumer.collector.wait_for(lambda: len(consumer.collector.messages) == 2)
    assert consumer.collector.bodies() == ["a", "b"]


def test_a_consumed_message_is_not_delivered_again(connect, subscribe, unique, send_all, assert_queue_is_empty):
    queue = unique("/queue/once.")
    first = connect()
    subscribe(first, queue)
    producer = connect()
    send_all(producer, queue, ["only once"])
    assert first.collector.wait_for(lambda: first.collector.messages)
    first.disconnect()
    assert_queue_is_empty(producer, queue)


def test_queues_with_dotted_and_slashed_names_are_distinct(connect, subscribe, unique, send_all):
    root = unique("/queue/orders")
    producer = connect()
    send_all(producer, f"{root}/1", ["slash"])
    send_all(producer, f"{root}.1", ["dot"])
    by_slash, by_dot = connect(), connect()
    subscribe(by_slash, f"{root}/1")
    subscribe(by_dot, f"{root}.1")
    assert by_slash.collector.wait_for(lambda: by_slash.collector.messages)
    assert by_dot.collector.wait_for(lambda: by_dot.collector.messages)
    time.sleep(0.1)
    assert [(m.headers["destination"], m.body) for m in by_slash.collector.messages] == [(f"{root}/1", "slash")]
    assert [(m.headers["destination"], m.body) for m in by_dot.collector.messages] == [(f"{root}.1", "dot")]


@pytest.fixture
def leave_unacknowledged(connect, subscribe, send_all):
    """
    Subscribe to a queue, send two messages, take C{held} without
    acknowledging them, and unsubscribe: they go back to the queue, if it
    still exists.
    """

    def leave(queue: str, held: int = 2) -> None:
        consumer = connect()
        subscribe(consumer, queue, id="holder", ack="client-individual")
        producer = connect()
        send_all(producer, queue, ["first", "second"])
        assert consumer.collector.wait_for(lambda: len(consumer.collector.messages) == held)
        consumer.unsubscribe(id="holder", receipt="gone")
        assert consumer.collector.wait_for(lambda: "gone" in consumer.collector.receipts)

    return leave


@pytest.mark.parametrize(
    "name, kept",
    [
        # Spring's relay turns /user/queue/position-updates into this.
        ("/queue/position-updates-user{}", False),
        ("/queue/position-updates-user{}.archive", True),
        ("/queue/position-updates.{}", True),
    ],
)
def test_user_queue_is_deleted_with_its_last_subscriber(
    connect, subscribe, unique, send_all, leave_unacknowledged, name, kept
):
    """
    A queue that a SUBSCRIBE created, named like Spring's per-user queues,
    goes away with its last subscriber, and the messages it held with it;
    any other queue keeps them for the next subscriber.
    """
    queue = name.format(unique(""))
    leave_unacknowledged(queue)
    later = connect()
    subscribe(later, queue)
    producer = connect()
    send_all(producer, queue, ["third"])
    assert later.collector.wait_for(lambda: "third" in later.collector.bodies())
    time.sleep(0.1)
    if kept:
        assert later.collector.bodies() == ["first", "second", "third"]
        assert [m.headers.get("redelivered") for m in later.collector.messages] == ["true", "true", None]
    else:
        assert later.collector.bodies() == ["third"]


def test_user_queue_is_kept_while_a_subscriber_remains(connect, subscribe, unique, send_all):
    queue = unique("/queue/updates-user")
    holder = connect()
    subscribe(holder, queue, id="holder", ack="client-individual")
    producer = connect()
    send_all(producer, queue, ["first", "second"])
    assert holder.collector.wait_for(lambda: len(holder.collector.messages) == 2)
    staying = connect()
    subscribe(staying, queue, id="staying")
    holder.unsubscribe(id="holder", receipt="gone")
    assert holder.collector.wait_for(lambda: "gone" in holder.collector.receipts)
    assert staying.collector.wait_for(lambda: len(staying.collector.messages) == 2)
    staying.unsubscribe(id="staying", receipt="gone")
    assert staying.collector.wait_for(lambda: "gone" in staying.collector.receipts)
    assert staying.collector.bodies() == ["first", "second"]


def test_user_queue_created_by_send_is_not_auto_deleted(connect, subscribe, unique, send_all, leave_unacknowledged):
    queue = unique("/queue/alerts-user")
    producer = connect()
    send_all(producer, queue, ["waiting"])
    leave_unacknowledged(queue, held=3)
    later = connect()
    subscribe(later, queue)
    assert later.collector.wait_for(lambda: len(later.collector.messages) == 3)
    assert later.collector.bodies() == ["waiting", "first", "second"]


def test_user_queue_is_deleted_when_its_subscriber_disconnects(
    connect, subscribe, unique, send_all, assert_queue_is_empty
):
    queue = unique("/queue/position-updates-user")
    consumer = connect()
    subscribe(consumer, queue, id="holder", ack="client")
    producer = connect()
    send_all(producer, queue, ["held"])
    assert consumer.collector.wait_for(lambda: consumer.collector.messages)
    consumer.disconnect()
    assert_queue_is_empty(producer, queue)
