"""
The plain SENDs and ACKs of one read, handed to the broker together: stored
in order with the frames around them, confirmed only once stored, and
bounded.
"""

from stompd.config import parse_config
from stompd.errors import StorageError
from stompd.session.session import MAX_UNCONFIRMED
from stompd.testing.harness import FakeClient, SlowStore, make_broker


def consumer_of(broker, *destinations, prefetch=1000, **headers):
    client = FakeClient(broker)
    client.connect()
    for n, destination in enumerate(destinations):
        client.send(
            "SUBSCRIBE",
            {
                "destination": destination,
                "id": str(n),
                "ack": "client-individual",
                "prefetch-count": str(prefetch),
                **headers,
            },
        )
    return client


def publish(broker, destination, count):
    producer = FakeClient(broker)
    producer.connect()
    for n in range(count):
        producer.send("SEND", {"destination": destination}, b"%d" % n)


def ack_frame(frame, **headers) -> bytes:
    lines = b"".join(b"%s:%s\n" % (name.encode(), value.encode()) for name, value in headers.items())
    return b"ACK\nid:" + frame.headers["ack"].encode() + b"\n" + lines + b"\n\x00"


def left_in(broker, destination) -> list[bytes]:
    """
    The bodies a new consumer of C{destination} gets: what nobody acked.
    """
    other = FakeClient(broker)
    other.connect()
    other.send("SUBSCRIBE", {"destination": destination, "id": "x"})
    return [f.body for f in other.frames()]


def test_acks_of_one_read_go_to_the_store_together_per_subscription():
    store = SlowStore(slow=("ack",))
    broker = make_broker(store=store)
    consumer = consumer_of(broker, "/queue/a", "/queue/b")
    publish(broker, "/queue/a", 10)
    publish(broker, "/queue/b", 5)
    delivered = consumer.frames()
    assert len(delivered) == 15
    consumer.send_bytes(b"".join(ack_frame(f) for f in delivered))
    assert [(call.queue, len(call.items)) for call in store.pending] == [("/queue/a", 10), ("/queue/b", 5)]
    store.answer_all()
    consumer.disconnect()
    # Acknowledged, so gone: nothing comes back when the consumer goes.
    assert left_in(broker, "/queue/a") == []
    assert left_in(broker, "/queue/b") == []


def test_a_receipt_after_acks_waits_until_they_are_stored():
    store = SlowStore(slow=("ack",))
    broker = make_broker(store=store)
    consumer = consumer_of(broker, "/queue/a")
    publish(broker, "/queue/a", 3)
    delivered = consumer.frames()
    consumer.send_bytes(
        b"".join(ack_frame(f) for f in delivered) + b"SUBSCRIBE\ndestination:/queue/c\nid:c\nreceipt:r\n\n\x00"
    )
    assert consumer.frames() == []
    store.answer()
    [receipt] = consumer.frames()
    assert receipt.headers == {"receipt-id": "r"}


def test_an_ack_with_a_receipt_is_confirmed_after_the_acks_before_it():
    store = SlowStore(slow=("ack",))
    broker = make_broker(store=store)
    consumer = consumer_of(broker, "/queue/a")
    publish(broker, "/queue/a", 3)
    first, second, third = consumer.frames()
    consumer.send_bytes(ack_frame(first) + ack_frame(second) + ack_frame(third, receipt="last"))
    # The first two together, then the one with the receipt on its own.
    assert [len(call.items) for call in store.pending] == [2, 1]
    store.answer()
    assert consumer.frames() == []
    store.answer()
    [receipt] = consumer.frames()
    assert receipt.headers == {"receipt-id": "last"}


def test_acks_before_a_bad_frame_in_the_same_read_are_kept():
    broker = make_broker()
    # With a visibility timeout, a delivery neither acknowledged nor given
    # back would come back once it runs out.
    consumer = consumer_of(broker, "/queue/a", visibility="5")
    publish(broker, "/queue/a", 4)
    delivered = consumer.frames()
    consumer.send_bytes(ack_frame(delivered[0]) + ack_frame(delivered[1]) + b"ACK\nid:no-such-message\n\n\x00")
    [error] = consumer.frames()
    assert error.headers["message"] == "unknown message"
    assert consumer.closed
    consumer.session.connection_lost()
    broker.clock.advance(10)
    assert left_in(broker, "/queue/a") == [b"2", b"3"]


def test_a_nack_after_acks_in_the_same_read_follows_them():
    broker = make_broker()
    consumer = consumer_of(broker, "/queue/a")
    publish(broker, "/queue/a", 3)
    first, second, third = consumer.frames()
    consumer.send_bytes(
        ack_frame(first) + b"NACK\nid:" + second.headers["ack"].encode() + b"\n\n\x00" + ack_frame(third)
    )
    [again] = consumer.frames()
    assert again.body == b"1"
    assert again.headers["redelivered"] == "true"
    consumer.send_bytes(ack_frame(again))
    consumer.disconnect()
    assert left_in(broker, "/queue/a") == []


def test_acks_not_stored_get_an_error():
    store = SlowStore(slow=("ack",))
    broker = make_broker(store=store)
    consumer = consumer_of(broker, "/queue/a")
    publish(broker, "/queue/a", 2)
    consumer.send_bytes(b"".join(ack_frame(f) for f in consumer.frames()))
    store.answer(StorageError("storage unavailable", "Redis did not answer."))
    [error] = consumer.frames()
    assert error.headers["message"] == "storage unavailable"
    assert consumer.closed


def test_acks_being_stored_are_bounded_and_the_next_frame_waits_its_turn():
    store = SlowStore(slow=("ack",))
    broker = make_broker(store=store)
    consumer = consumer_of(broker, "/queue/a", prefetch=0)
    publish(broker, "/queue/a", MAX_UNCONFIRMED)
    delivered = consumer.frames()
    # One read each: one store call each, none answered.
    for frame in delivered[:-1]:
        consumer.send_bytes(ack_frame(frame))
    assert len(store.pending) == MAX_UNCONFIRMED - 1
    assert consumer.transport.producerState == "producing"
    # The last ACK fills the window; the SEND read with it waits.
    consumer.send_bytes(ack_frame(delivered[-1]) + b"SEND\ndestination:/queue/later\nreceipt:s\n\nx\x00")
    assert len(store.pending) == MAX_UNCONFIRMED
    assert consumer.transport.producerState == "paused"
    assert store.depth("/queue/later").result == 0
    store.answer_all()
    assert consumer.transport.producerState == "producing"
    assert store.depth("/queue/later").result == 1
    [receipt] = consumer.frames()
    assert receipt.headers == {"receipt-id": "s"}
    assert left_in(broker, "/queue/a") == []


def send_frame(destination: str, body: bytes, **headers) -> bytes:
    lines = b"".join(b"%s:%s\n" % (name.encode(), value.encode()) for name, value in headers.items())
    return b"SEND\ndestination:" + destination.encode() + b"\n" + lines + b"\n" + body + b"\x00"


def test_sends_of_one_read_go_to_the_store_together_per_queue_in_order():
    store = SlowStore()
    broker = make_broker(store=store)
    producer = FakeClient(broker)
    producer.connect()
    producer.send_bytes(
        b"".join(send_frame("/queue/a", b"a%d" % n) for n in range(5))
        + send_frame("/queue/b", b"b0")
        + send_frame("/queue/a", b"a5")
    )
    assert [(call.queue, [m.body for m in call.items]) for call in store.pending] == [
        ("/queue/a", [b"a0", b"a1", b"a2", b"a3", b"a4", b"a5"]),
        ("/queue/b", [b"b0"]),
    ]
    store.answer_all()
    assert left_in(broker, "/queue/a") == [b"a%d" % n for n in range(6)]
    assert left_in(broker, "/queue/b") == [b"b0"]
    assert producer.frames() == []


def test_sends_to_a_topic_in_one_read_reach_its_subscribers_in_order():
    broker = make_broker()
    subscriber = FakeClient(broker)
    subscriber.connect()
    subscriber.send("SUBSCRIBE", {"destination": "/topic/news", "id": "t"})
    producer = FakeClient(broker)
    producer.connect()
    producer.send_bytes(b"".join(send_frame("/topic/news", b"%d" % n) for n in range(4)))
    assert [f.body for f in subscriber.frames()] == [b"0", b"1", b"2", b"3"]


def test_a_receipted_send_after_plain_ones_is_confirmed_once_all_are_stored():
    store = SlowStore()
    broker = make_broker(store=store)
    producer = FakeClient(broker)
    producer.connect()
    producer.send_bytes(send_frame("/queue/a", b"0") + send_frame("/queue/a", b"1") + send_frame("/queue/a", b"2", receipt="r"))
    assert [[m.body for m in call.items] for call in store.pending] == [[b"0", b"1"], [b"2"]]
    assert producer.frames() == []
    store.answer_all()
    [receipt] = producer.frames()
    assert receipt.headers == {"receipt-id": "r"}


def test_sends_before_a_bad_send_in_the_same_read_are_published():
    broker = make_broker()
    producer = FakeClient(broker)
    producer.connect()
    producer.send_bytes(
        send_frame("/queue/a", b"0") + send_frame("/queue/a", b"1") + send_frame("/queue/a", b"2", priority="high")
        + send_frame("/queue/a", b"3")
    )
    [error] = producer.frames()
    assert error.headers["message"] == "invalid priority header"
    assert producer.closed
    assert left_in(broker, "/queue/a") == [b"0", b"1"]


def test_sends_of_one_read_to_a_full_queue_store_what_fits_and_refuse_the_rest():
    broker = make_broker(parse_config('[queues]\nmax-depth = 3\noverflow = "reject"\n'))
    producer = FakeClient(broker)
    producer.connect()
    producer.send_bytes(b"".join(send_frame("/queue/jobs", b"m%d" % n) for n in range(5)))
    [error] = producer.frames()
    assert error.headers["message"] == "queue full"
    assert left_in(broker, "/queue/jobs") == [b"m0", b"m1", b"m2"]


def test_sends_of_one_read_that_fill_a_queue_pause_the_publisher():
    broker = make_broker(parse_config("[queues]\nhigh-water-mark = 4\n"))
    producer = FakeClient(broker)
    producer.connect()
    producer.send_bytes(b"".join(send_frame("/queue/full", b"%d" % n) for n in range(6)))
    producer.send("SEND", {"destination": "/queue/full", "receipt": "after"}, b"6")
    assert producer.frames() == []
    assert producer.transport.producerState == "paused"
    assert left_in(broker, "/queue/full") == [b"%d" % n for n in range(7)]
    [receipt] = producer.frames()
    assert receipt.headers == {"receipt-id": "after"}
    assert producer.transport.producerState == "producing"


def test_groups_of_one_read_that_overfill_the_window_wait_for_the_same_room():
    store = SlowStore(slow=("ack",))
    broker = make_broker(store=store)
    consumer = consumer_of(broker, "/queue/a", "/queue/b", prefetch=0)
    publish(broker, "/queue/a", MAX_UNCONFIRMED)
    publish(broker, "/queue/b", 1)
    delivered = consumer.frames()
    of_a = [f for f in delivered if f.headers["destination"] == "/queue/a"]
    [of_b] = [f for f in delivered if f.headers["destination"] == "/queue/b"]
    for frame in of_a[:-1]:
        consumer.send_bytes(ack_frame(frame))
    assert len(store.pending) == MAX_UNCONFIRMED - 1
    # Two groups in one read (one per subscription): the first fills the
    # window, the second goes over it; both go to the store, and reading
    # pauses until there is room for both.
    consumer.send_bytes(ack_frame(of_a[-1]) + ack_frame(of_b))
    assert [call.queue for call in store.pending[-2:]] == ["/queue/a", "/queue/b"]
    assert consumer.transport.producerState == "paused"
    store.answer_all()
    assert consumer.transport.producerState == "producing"
    consumer.send("DISCONNECT", {"receipt": "bye"})
    [receipt] = consumer.frames()
    assert receipt.headers == {"receipt-id": "bye"}
    assert left_in(broker, "/queue/a") == []
    assert left_in(broker, "/queue/b") == []
