"""
Acknowledgement through a real stomp.py client: auto, client (cumulative)
and client-individual modes in every protocol version, NACK, redelivery of
what a consumer held when it leaves, and prefetch limits.
"""

import time

import pytest


def settle(conn, message, command: str = "ACK", receipt: str = "settled") -> None:
    """
    ACK or NACK C{message} and wait for the broker's receipt.
    """
    headers = message.headers
    if conn.version == "1.2":
        ids = {"id": headers["ack"]}
    elif conn.version == "1.1":
        ids = {"message-id": headers["message-id"], "subscription": headers["subscription"]}
    else:
        ids = {"message-id": headers["message-id"]}
    conn.send_frame(command, {**ids, "receipt": receipt})
    assert conn.collector.wait_for(lambda: receipt in conn.collector.receipts), f"no receipt for {command}"


def redelivered(message) -> tuple:
    return message.headers.get("redelivered"), message.headers.get("delivery-count")


def test_auto_ack_messages_are_gone_once_delivered(connect, subscribe, unique, send_all, assert_queue_is_empty):
    queue = unique("/queue/auto.")
    first = connect()
    subscribe(first, queue)
    producer = connect()
    send_all(producer, queue, ["a", "b", "c"])
    assert first.collector.wait_for(lambda: len(first.collector.messages) == 3)
    assert all("ack" not in m.headers for m in first.collector.messages)
    first.disconnect()
    assert_queue_is_empty(producer, queue)


@pytest.mark.parametrize(
    "version, ack, acked, left",
    [
        ("1.0", "client", [2], ["m4", "m5"]),
        ("1.1", "client", [2], ["m4", "m5"]),
        ("1.2", "client", [2], ["m4", "m5"]),
        ("1.1", "client-individual", [0, 2, 4], ["m2", "m4"]),
        ("1.2", "client-individual", [0, 2, 4], ["m2", "m4"]),
    ],
    ids=["client-1.0", "client-1.1", "client-1.2", "client-individual-1.1", "client-individual-1.2"],
)
def test_client_ack_modes(connect, subscribe, unique, send_all, version, ack, acked, left):
    """
    An ACK in client mode acknowledges that message and all delivered
    before it on the subscription; in client-individual mode, that message
    only. The rest come back after a disconnect.
    """
    queue = unique("/queue/client.")
    consumer = connect(version=version)
    subscribe(consumer, queue, id="sub", ack=ack)
    producer = connect()
    send_all(producer, queue, [f"m{i}" for i in range(1, 6)])
    assert consumer.collector.wait_for(lambda: len(consumer.collector.messages) == 5)
    for n in acked:
        settle(consumer, consumer.collector.messages[n], receipt=f"acked-{n}")
    consumer.disconnect()
    other = connect()
    subscribe(other, queue)
    assert other.collector.wait_for_bodies(2) == left
    assert [redelivered(m) for m in other.collector.messages] == [("true", "2")] * 2


def test_acknowledged_messages_are_not_redelivered(connect, subscribe, unique, send_all, assert_queue_is_empty):
    queue = unique("/queue/all-acked.")
    consumer = connect()
    subscribe(consumer, queue, id="sub", ack="client")
    producer = connect()
    send_all(producer, queue, ["a", "b"])
    assert consumer.collector.wait_for(lambda: len(consumer.collector.messages) == 2)
    settle(consumer, consumer.collector.messages[1])
    consumer.disconnect()
    assert_queue_is_empty(producer, queue)


def test_nack_redelivers_with_a_growing_delivery_count(connect, subscribe, unique, send_all):
    queue = unique("/queue/nack.")
    consumer = connect()
    subscribe(consumer, queue, id="sub", ack="client-individual")
    producer = connect()
    send_all(producer, queue, ["bad", "good"])
    assert consumer.collector.wait_for(lambda: len(consumer.collector.messages) == 2)
    # delivery-count on every delivery, redelivered only from the second.
    assert [redelivered(m) for m in consumer.collector.messages] == [(None, "1")] * 2
    settle(consumer, consumer.collector.messages[0], "NACK", receipt="nack-1")
    assert consumer.collector.wait_for(lambda: len(consumer.collector.messages) == 3)
    again = consumer.collector.messages[2]
    assert (again.body, *redelivered(again)) == ("bad", "true", "2")
    assert again.headers["message-id"] == consumer.collector.messages[0].headers["message-id"]
    settle(consumer, again, "NACK", receipt="nack-2")
    assert consumer.collector.wait_for(lambda: len(consumer.collector.messages) == 4)
    assert (consumer.collector.messages[3].body, *redelivered(consumer.collector.messages[3])) == ("bad", "true", "3")
    settle(consumer, consumer.collector.messages[3], receipt="ack")
    settle(consumer, consumer.collector.messages[1], receipt="ack-good")
    time.sleep(0.1)
    assert len(consumer.collector.messages) == 4


def test_nacked_message_goes_to_the_next_consumer(connect, subscribe, unique, send_all):
    queue = unique("/queue/nack-other.")
    refuser = connect()
    subscribe(refuser, queue, id="refuser", ack="client-individual")
    producer = connect()
    send_all(producer, queue, ["job"])
    assert refuser.collector.wait_for(lambda: refuser.collector.messages)
    other = connect()
    subscribe(other, queue, id="other")
    settle(refuser, refuser.collector.messages[0], "NACK")
    # Round-robin: the refuser had the last message, so the other consumer
    # has the next turn.
    assert other.collector.wait_for_bodies(1) == ["job"]
    (message,) = other.collector.messages
    assert (message.body, *redelivered(message)) == ("job", "true", "2")
    assert len(refuser.collector.messages) == 1


@pytest.mark.parametrize("leave", ["disconnect", "unsubscribe"])
def test_unacknowledged_messages_go_to_another_consumer(connect, subscribe, unique, send_all, leave):
    queue = unique("/queue/leaving.")
    leaver = connect()
    subscribe(leaver, queue, id="leaver", ack="client")
    producer = connect()
    send_all(producer, queue, ["m1", "m2", "m3"])
    assert leaver.collector.wait_for(lambda: len(leaver.collector.messages) == 3)
    settle(leaver, leaver.collector.messages[0])
    stayer = connect()
    subscribe(stayer, queue)
    if leave == "disconnect":
        leaver.disconnect()
    else:
        leaver.unsubscribe(id="leaver", receipt="unsubscribed")
        assert leaver.collector.wait_for(lambda: "unsubscribed" in leaver.collector.receipts)
    assert stayer.collector.wait_for(lambda: len(stayer.collector.messages) == 2)
    assert stayer.collector.bodies() == ["m2", "m3"]
    assert [redelivered(m) for m in stayer.collector.messages] == [("true", "2")] * 2
    if leave == "unsubscribe":
        send_all(producer, queue, ["m4"])
        assert stayer.collector.wait_for(lambda: len(stayer.collector.messages) == 3)
        time.sleep(0.1)
        assert leaver.collector.bodies() == ["m1", "m2", "m3"]


def test_nacked_topic_message_is_dropped(connect, subscribe, unique):
    topic = unique("/topic/nack.")
    consumer = connect()
    subscribe(consumer, topic, id="sub", ack="client-individual")
    producer = connect()
    producer.send(topic, "once")
    assert consumer.collector.wait_for(lambda: consumer.collector.messages)
    settle(consumer, consumer.collector.messages[0], "NACK")
    producer.send(topic, "next")
    assert consumer.collector.wait_for(lambda: len(consumer.collector.messages) == 2)
    settle(consumer, consumer.collector.messages[1], "ACK", receipt="acked")
    time.sleep(0.2)
    assert consumer.collector.bodies() == ["once", "next"]
    assert not consumer.collector.errors


@pytest.mark.parametrize("header", ["prefetch-count", "activemq.prefetchSize"])
def test_prefetch_limits_unacknowledged_messages(connect, subscribe, unique, send_all, header):
    queue = unique("/queue/prefetch.")
    holder = connect()
    subscribe(holder, queue, id="holder", ack="client-individual", **{header: "2"})
    worker = connect()
    subscribe(worker, queue, id="worker", ack="client-individual")
    producer = connect()
    send_all(producer, queue, [str(i) for i in range(10)])
    assert worker.collector.wait_for(lambda: len(worker.collector.messages) == 8)
    time.sleep(0.1)
    assert len(holder.collector.messages) == 2
    assert len(worker.collector.messages) == 8
    # An ACK frees room for one more.
    settle(holder, holder.collector.messages[0])
    send_all(producer, queue, ["10", "11"])
    assert holder.collector.wait_for(lambda: len(holder.collector.messages) == 3)
    assert worker.collector.wait_for(lambda: len(worker.collector.messages) == 9)
    time.sleep(0.1)
    assert len(holder.collector.messages) == 3
    all_bodies = sorted(int(b) for c in (holder, worker) for b in c.collector.bodies())
    assert all_bodies == list(range(12))


def test_default_prefetch_bounds_client_ack_subscriptions(connect, subscribe, unique, send_all):
    queue = unique("/queue/default-prefetch.")
    producer = connect()
    send_all(producer, queue, [str(i) for i in range(150)])
    consumer = connect()
    subscribe(consumer, queue, id="sub", ack="client")
    assert consumer.collector.wait_for(lambda: len(consumer.collector.messages) == 100)
    time.sleep(0.2)
    assert len(consumer.collector.messages) == 100
    settle(consumer, consumer.collector.messages[99])
    assert consumer.collector.wait_for(lambda: len(consumer.collector.messages) == 150)
    assert consumer.collector.bodies() == [str(i) for i in range(150)]


def test_ack_receipt(connect, subscribe, unique, send_all):
    queue = unique("/queue/ack-receipt.")
    consumer = connect()
    subscribe(consumer, queue, id="sub", ack="client-individual")
    producer = connect()
    send_all(producer, queue, ["x"])
    assert consumer.collector.wait_for(lambda: consumer.collector.messages)
    consumer.ack(consumer.collector.messages[0].headers["ack"], receipt="acked")
    assert consumer.collector.wait_for(lambda: "acked" in consumer.collector.receipts)


@pytest.mark.parametrize("command", ["ACK", "NACK"])
def test_ack_of_unknown_message_is_an_error(raw, assert_serving, expect_error, command):
    client = raw()
    assert client.connect().command == "CONNECTED"
    client.send_frame(command, {"id": "no-such-message", "receipt": "r"})
    error = expect_error(client)
    assert error.headers.get("receipt-id") == "r"
    assert_serving()


def test_ack_of_a_message_twice_is_an_error(raw, unique, assert_serving, expect_error):
    queue = unique("/queue/twice.")
    client = raw()
    assert client.connect().command == "CONNECTED"
    client.send_frame("SUBSCRIBE", {"id": "s", "destination": queue, "ack": "client-individual"})
    client.send_frame("SEND", {"destination": queue}, b"x")
    message = client.read_frame()
    assert message.command == "MESSAGE"
    client.send_frame("ACK", {"id": message.headers["ack"], "receipt": "first"})
    receipt = client.read_frame()
    assert receipt.command == "RECEIPT" and receipt.headers["receipt-id"] == "first"
    client.send_frame("ACK", {"id": message.headers["ack"]})
    expect_error(client)
    assert_serving()


def test_returned_messages_go_back_to_the_head_of_the_queue(connect, subscribe, unique, send_all):
    queue = unique("/queue/head.")
    leaver = connect()
    subscribe(leaver, queue, id="leaver", ack="client", **{"prefetch-count": "3"})
    producer = connect()
    send_all(producer, queue, [f"m{i}" for i in range(1, 6)])
    assert leaver.collector.wait_for(lambda: len(leaver.collector.messages) == 3)
    leaver.disconnect()
    other = connect()
    subscribe(other, queue)
    assert other.collector.wait_for(lambda: len(other.collector.messages) == 5)
    assert other.collector.bodies() == [f"m{i}" for i in range(1, 6)]
    assert [m.headers.get("redelivered") for m in other.collector.messages] == ["true"] * 3 + [None] * 2


def test_redelivery_keeps_the_message(connect, subscribe, unique):
    queue = unique("/queue/kept.")
    consumer = connect()
    subscribe(consumer, queue, id="sub", ack="client-individual")
    producer = connect()
    producer.send(queue, "payload", content_type="application/json", headers={"x-trace": "t-1"}, receipt="sent")
    assert producer.collector.wait_for(lambda: "sent" in producer.collector.receipts)
    assert consumer.collector.wait_for(lambda: consumer.collector.messages)
    settle(consumer, consumer.collector.messages[0], "NACK")
    assert consumer.collector.wait_for(lambda: len(consumer.collector.messages) == 2)
    first, again = consumer.collector.messages
    for name in ("message-id", "destination", "content-type", "content-length", "x-trace", "subscription"):
        assert again.headers[name] == first.headers[name], name
    assert again.body == "payload"


def test_stomp_1_0_subscription_without_id(connect, subscribe, unique, send_all):
    """
    STOMP 1.0 subscriptions may have no id: the destination names them, in
    MESSAGE frames and in UNSUBSCRIBE.
    """
    queue = unique("/queue/ten.")
    consumer = connect(version="1.0")
    consumer.subscribe(queue, ack="client", receipt="subscribed")
    assert consumer.collector.wait_for(lambda: "subscribed" in consumer.collector.receipts)
    producer = connect()
    send_all(producer, queue, ["a", "b"])
    assert consumer.collector.wait_for(lambda: len(consumer.collector.messages) == 2)
    assert {m.headers["subscription"] for m in consumer.collector.messages} == {queue}
    settle(consumer, consumer.collector.messages[0])
    consumer.unsubscribe(destination=queue, receipt="unsubscribed")
    assert consumer.collector.wait_for(lambda: "unsubscribed" in consumer.collector.receipts)
    other = connect()
    subscribe(other, queue)
    assert other.collector.wait_for_bodies(1) == ["b"]
