"""
Work-queue semantics through real stomp.py clients, in real time, against a
broker with channel queues and an OCI-compatible listener: visibility
timeouts, consumers that stall or die, late acknowledgements, poison
messages and dead letters, NACK delays, expiry, delayed delivery,
priorities and channels.
"""

import time

import pytest


@pytest.fixture(scope="module")
def broker(tmp_path_factory, broker_process, free_port):
    oci_port = free_port()
    running = broker_process(
        tmp_path_factory.mktemp("broker"),
        "[heart-beat]\nsend = 100\nreceive = 100\n"
        '[queues]\nchannel-queues = ["/queue/tenant.*"]\n'
        f'[[listener]]\nendpoint = "tcp:{oci_port}:interface=127.0.0.1"\noci-compat = true\n',
    )
    running.oci_port = oci_port
    yield running
    running.stop()


def ack_or_nack(conn, message, command="ACK", receipt=None, **headers):
    """
    ACK or NACK C{message} (STOMP 1.2) and wait for the receipt.
    """
    receipt = receipt or f"{command}-{message.headers['ack']}-{time.monotonic()}"
    conn.send_frame(command, {"id": message.headers["ack"], "receipt": receipt, **headers})
    conn.collector.wait_for_receipt(receipt)


def test_consumer_stalling_past_its_visibility_loses_the_message(connect, subscribe, unique, send_all, assert_queue_is_empty):
    queue = unique("/queue/visibility.")
    stalled = connect()
    subscribe(stalled, queue, id="stalled", ack="client-individual", visibility="0.5")
    producer = connect()
    send_all(producer, queue, ["job"])
    [first] = stalled.collector.wait_for_bodies(1, quiet=0) and stalled.collector.messages
    worker = connect()
    subscribe(worker, queue, id="worker", ack="client-individual", visibility="30")
    started = time.monotonic()
    # The stalled consumer stays connected; after its 0.5 s the message is
    # visible again and goes to a consumer (round-robin: the worker).
    assert worker.collector.wait_for(lambda: worker.collector.messages, timeout=5)
    assert time.monotonic() - started < 2
    [again] = worker.collector.messages
    assert (again.body, again.headers["delivery-count"], again.headers["redelivered"]) == ("job", "2", "true")
    assert again.headers["message-id"] == first.headers["message-id"]
    # The late ACK changes nothing and is no error.
    ack_or_nack(stalled, first, receipt="late")
    assert stalled.is_connected() and not stalled.collector.errors
    ack_or_nack(worker, again)
    assert_queue_is_empty(producer, queue)


def test_consumer_dying_without_ack_hands_the_message_on(raw, connect, subscribe, unique, send_all):
    queue = unique("/queue/dies.")
    dying = raw()
    assert dying.connect().command == "CONNECTED"
    dying.send_frame("SUBSCRIBE", {"destination": queue, "id": "s", "ack": "client-individual", "receipt": "r"})
    assert dying.read_frame().command == "RECEIPT"
    producer = connect()
    send_all(producer, queue, ["job"])
    assert dying.read_frame().headers["delivery-count"] == "1"
    dying.close()
    survivor = connect()
    subscribe(survivor, queue, ack="client-individual")
    [again] = survivor.collector.wait_for_bodies(1, quiet=0) and survivor.collector.messages
    assert (again.headers["redelivered"], again.headers["delivery-count"]) == ("true", "2")


def test_poison_message_ends_in_the_dead_letter_queue(connect, subscribe, unique, send_all):
    queue = unique("/queue/poison.")
    consumer = connect()
    subscribe(consumer, queue, ack="client-individual", **{"max-deliveries": "2"})
    dead = connect()
    subscribe(dead, f"{queue}.DLQ", id="dlq", ack="client-individual")
    producer = connect()
    before = int(time.time() * 1000)
    send_all(producer, queue, ["poison"], **{"x-order": "42"})
    for count in (1, 2):
        assert consumer.collector.wait_for(lambda: len(consumer.collector.messages) == count)
        ack_or_nack(consumer, consumer.collector.messages[-1], "NACK")
    assert dead.collector.wait_for(lambda: dead.collector.messages)
    after = int(time.time() * 1000)
    [letter] = dead.collector.messages
    headers = letter.headers
    assert letter.body == "poison"
    assert headers["x-order"] == "42"
    assert headers["destination"] == f"{queue}.DLQ"
    assert headers["original-destination"] == queue
    assert headers["original-message-id"] == consumer.collector.messages[0].headers["message-id"]
    assert headers["dead-letter-reason"] == "max-deliveries"
    assert headers["original-delivery-count"] == "2"
    assert before <= int(headers["first-delivered-at"]) <= int(headers["last-delivered-at"]) <= after
    assert headers["delivery-count"] == "1"
    ack_or_nack(dead, letter)
    time.sleep(0.2)
    assert len(consumer.collector.messages) == 2


def test_rejected_message_is_dead_lettered_where_the_subscription_says(connect, subscribe, unique, send_all):
    queue = unique("/queue/reject.")
    poison = unique("/queue/poison-box.")
    consumer = connect()
    subscribe(consumer, queue, ack="client-individual", **{"dead-letter-queue": poison})
    dead = connect()
    subscribe(dead, poison, id="dlq")
    send_all(connect(), queue, ["bad"])
    assert consumer.collector.wait_for(lambda: consumer.collector.messages)
    ack_or_nack(consumer, consumer.collector.messages[0], "NACK", requeue="false")
    assert dead.collector.wait_for(lambda: dead.collector.messages)
    assert dead.collector.messages[0].headers["dead-letter-reason"] == "rejected"


def test_nack_with_visibility_delays_redelivery(connect, subscribe, unique, send_all):
    queue = unique("/queue/nack-delay.")
    consumer = connect()
    subscribe(consumer, queue, ack="client-individual")
    send_all(connect(), queue, ["job"])
    assert consumer.collector.wait_for(lambda: consumer.collector.messages)
    nacked = time.monotonic()
    ack_or_nack(consumer, consumer.collector.messages[0], "NACK", visibility="0.8")
    assert consumer.collector.wait_for(lambda: len(consumer.collector.messages) == 2)
    assert time.monotonic() - nacked >= 0.75
    assert consumer.collector.messages[1].headers["delivery-count"] == "2"


def test_expired_messages_are_never_delivered(connect, subscribe, unique, send_all):
    queue = unique("/queue/expiry.")
    producer = connect()
    send_all(producer, queue, ["short"], ttl="200")
    send_all(producer, queue, ["long"], expiration="60000")
    time.sleep(0.4)
    consumer = connect()
    subscribe(consumer, queue)
    [live] = consumer.collector.wait_for_bodies(1) and consumer.collector.messages
    assert live.body == "long"
    assert abs(int(live.headers["expire-after"]) - (time.time() * 1000 + 59600)) < 5000
    dead = connect()
    subscribe(dead, f"{queue}.DLQ", id="dlq")
    assert dead.collector.wait_for_bodies(1) == ["short"]
    assert dead.collector.messages[0].headers["dead-letter-reason"] == "expired"


def test_delayed_message_is_stored_at_once_and_delivered_later(connect, subscribe, unique):
    queue = unique("/queue/delay.")
    consumer = connect()
    subscribe(consumer, queue)
    producer = connect()
    sent = time.monotonic()
    producer.send(queue, "later", headers={"AMQ_SCHEDULED_DELAY": "600"}, receipt="stored")
    producer.collector.wait_for_receipt("stored")
    assert time.monotonic() - sent < 0.4
    assert consumer.collector.wait_for(lambda: consumer.collector.messages)
    assert time.monotonic() - sent >= 0.55
    visible_after = int(consumer.collector.messages[0].headers["visible-after"])
    assert visible_after <= time.time() * 1000


def test_priorities_reorder_a_backlog(connect, subscribe, unique, send_all):
    queue = unique("/queue/priority.")
    producer = connect()
    for body, priority in (("low", "1"), ("normal", None), ("urgent", "9"), ("high", "7"), ("urgent-2", "9")):
        headers = {"priority": priority} if priority else {}
        send_all(producer, queue, [body], **headers)
    consumer = connect()
    subscribe(consumer, queue)
    assert consumer.collector.wait_for_bodies(5) == ["urgent", "urgent-2", "high", "normal", "low"]


def test_channels(connect, subscribe, unique, send_all):
    name = unique("tenant.")
    queue = f"/queue/{name}"
    producer = connect()
    send_all(producer, f"{queue}/acme", ["for-acme"])
    send_all(producer, queue, ["by-header"], channel="globex")
    send_all(producer, queue, ["no-channel"])
    acme = connect()
    subscribe(acme, queue, id="acme", channel="acme")
    assert acme.collector.wait_for_bodies(1) == ["for-acme"]
    assert acme.collector.messages[0].headers["channel"] == "acme"
    # A filter in the destination, as in the header.
    globex = connect()
    subscribe(globex, f"{queue}/glob*", id="globex")
    assert globex.collector.wait_for_bodies(1) == ["by-header"]
    rest = connect()
    subscribe(rest, queue, id="rest")
    assert rest.collector.wait_for_bodies(1) == ["no-channel"]


def test_oci_compatible_listener(broker, connect, unique, expect_error, raw):
    queue_id = unique("ocid1.queue.oc1.test.")
    consumer = connect(port=broker.oci_port)
    consumer.subscribe(f"{queue_id}/ch-1", id="s", ack="client-individual", headers={"visibility": "30"}, receipt="sub")
    consumer.collector.wait_for_receipt("sub")
    producer = connect(port=broker.oci_port)
    producer.send(f"{queue_id}/ch-1", "hello oci", receipt="sent")
    producer.collector.wait_for_receipt("sent")
    [message] = consumer.collector.wait_for_bodies(1, quiet=0) and consumer.collector.messages
    assert message.headers["destination"] == f"{queue_id}/ch-1"
    ack_or_nack(consumer, message)
    # Only client-individual, and no transactions, as in OCI Queue.
    auto = raw(broker.oci_port)
    assert auto.connect().command == "CONNECTED"
    auto.send_frame("SUBSCRIBE", {"destination": queue_id, "id": "s", "ack": "auto"})
    expect_error(auto, "invalid ack mode")
    client = raw(broker.oci_port)
    assert client.connect().command == "CONNECTED"
    client.send_frame("BEGIN", {"transaction": "t1", "receipt": "b"})
    error = expect_error(client, "transactions not supported")
    assert error.headers["receipt-id"] == "b"
    # The ordinary listener is unchanged.
    plain = connect()
    plain.begin("t2")
    plain.send(f"/queue/{queue_id}", "fine", transaction="t2")
    plain.commit("t2")
    assert plain.is_connected()


def test_silent_clients_are_dropped_after_their_transports_grace(broker, raw, raw_ws, connect, subscribe, unique, send_all):
    """
    The module's broker expects beats at most every 100 ms, with the default
    graces: 2 for TCP, 7 for WebSocket. A dropped TCP consumer's message
    goes to another consumer at once.
    """
    queue = unique("/queue/silent.")
    silent = raw()
    assert silent.connect(heart_beat="100,0").command == "CONNECTED"
    silent.send_frame("SUBSCRIBE", {"destination": queue, "id": "s", "ack": "client-individual", "receipt": "r"})
    assert silent.read_frame().command == "RECEIPT"
    browser = raw_ws()
    assert browser.connect("1.2", heart_beat="100,0").command == "CONNECTED"
    browser_connected = time.monotonic()
    send_all(connect(), queue, ["job"])
    assert silent.read_frame().command == "MESSAGE"
    other = connect()
    subscribe(other, queue, id="other", ack="client-individual")
    started = time.monotonic()
    frame = silent.read_frame(timeout=2)
    assert frame is not None and frame.headers["message"] == "heart-beat timeout", frame
    assert time.monotonic() - started < 0.6
    assert other.collector.wait_for(lambda: other.collector.messages, timeout=2)
    assert other.collector.messages[0].headers["redelivered"] == "true"
    # The WebSocket client, silent as long, is still there.
    assert browser.read_frame(timeout=0.1) is None and not browser.eof
    frame = browser.read_frame(timeout=2)
    assert frame is not None and frame.headers["message"] == "heart-beat timeout", frame
    assert time.monotonic() - browser_connected >= 0.6


def test_queue_defaults_from_config(start_broker, connect, subscribe, unique, send_all):
    """
    [queues] visibility-timeout and max-deliveries apply to a consumer
    that asks for neither: a consumer that never answers loses the message
    after each timeout, and after two deliveries it is a dead letter.
    """
    other = start_broker("[queues]\nvisibility-timeout = 0.3\nmax-deliveries = 2\n")
    queue = unique("/queue/defaults.")
    silent = connect(port=other.port)
    subscribe(silent, queue, ack="client-individual")
    dead = connect(port=other.port)
    subscribe(dead, f"{queue}.DLQ", id="dlq")
    send_all(connect(port=other.port), queue, ["job"])
    assert dead.collector.wait_for(lambda: dead.collector.messages, timeout=5)
    assert [m.headers["delivery-count"] for m in silent.collector.messages] == ["1", "2"]
    letter = dead.collector.messages[0]
    assert (letter.body, letter.headers["dead-letter-reason"]) == ("job", "max-deliveries")
    assert silent.is_connected()
