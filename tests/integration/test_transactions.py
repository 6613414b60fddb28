"""
Transactions through a real stomp.py client: SEND and ACK inside
BEGIN/COMMIT take effect on COMMIT only; ABORT and a disconnect discard
them; misuse is an ERROR.
"""

import time

import pytest


def test_sends_are_delivered_on_commit(connect, subscribe, unique):
    queue, topic = unique("/queue/tx."), unique("/topic/tx.")
    consumer = connect()
    subscribe(consumer, queue, id="q")
    subscribe(consumer, topic, id="t")
    producer = connect()
    producer.begin("tx1", receipt="begun")
    for i in range(3):
        producer.send(queue, f"q{i}", transaction="tx1")
        producer.send(topic, f"t{i}", transaction="tx1")
    producer.send(queue, "outside", receipt="outside")
    producer.collector.wait_for_receipt("outside")
    assert consumer.collector.wait_for_bodies(1, quiet=0.2) == ["outside"]
    producer.commit("tx1", receipt="committed")
    producer.collector.wait_for_receipt("committed")
    assert producer.collector.receipts == ["begun", "outside", "committed"]
    assert consumer.collector.wait_for(lambda: len(consumer.collector.messages) == 7)
    # In order per destination; STOMP orders nothing across destinations.
    by_subscription = {"q": [], "t": []}
    for message in consumer.collector.messages:
        by_subscription[message.headers["subscription"]].append(message.body)
    assert by_subscription == {"q": ["outside", "q0", "q1", "q2"], "t": ["t0", "t1", "t2"]}


def test_abort_discards_sends(connect, subscribe, unique, send_all):
    queue = unique("/queue/tx-abort.")
    consumer = connect()
    subscribe(consumer, queue)
    producer = connect()
    producer.begin("tx1")
    producer.send(queue, "discarded", transaction="tx1")
    producer.abort("tx1", receipt="aborted")
    producer.collector.wait_for_receipt("aborted")
    send_all(producer, queue, ["after"])
    assert consumer.collector.wait_for_bodies(1) == ["after"]


def test_transaction_id_can_be_reused_after_it_ends(connect, subscribe, unique):
    queue = unique("/queue/tx-reuse.")
    consumer = connect()
    subscribe(consumer, queue)
    producer = connect()
    producer.begin("tx")
    producer.send(queue, "aborted", transaction="tx")
    producer.abort("tx")
    producer.begin("tx")
    producer.send(queue, "committed", transaction="tx")
    producer.commit("tx", receipt="done")
    producer.collector.wait_for_receipt("done")
    assert consumer.collector.wait_for_bodies(1) == ["committed"]


@pytest.mark.parametrize("end, acked", [("commit", True), ("abort", False)])
def test_ack_takes_effect_on_commit(connect, subscribe, unique, send_all, end, acked):
    queue = unique("/queue/tx-ack.")
    consumer = connect()
    subscribe(consumer, queue, id="s", ack="client-individual")
    producer = connect()
    send_all(producer, queue, ["work"])
    assert consumer.collector.wait_for(lambda: consumer.collector.messages)
    consumer.begin("tx", receipt="begun")
    consumer.ack(consumer.collector.messages[0].headers["ack"], transaction="tx", receipt="acked")
    consumer.collector.wait_for_receipt("acked")
    getattr(consumer, end)("tx", receipt="ended")
    consumer.collector.wait_for_receipt("ended")
    assert consumer.collector.receipts[-3:] == ["begun", "acked", "ended"]
    consumer.disconnect()
    other = connect()
    subscribe(other, queue)
    send_all(producer, queue, ["next"])
    assert other.collector.wait_for(lambda: "next" in other.collector.bodies())
    time.sleep(0.1)
    assert other.collector.bodies() == (["next"] if acked else ["work", "next"])


def test_ack_in_transaction_is_not_applied_before_commit(connect, subscribe, unique, send_all):
    """
    While the transaction is open, the message is still unacknowledged:
    a disconnect, which aborts the transaction, gives it back.
    """
    queue = unique("/queue/tx-ack-open.")
    consumer = connect()
    subscribe(consumer, queue, id="s", ack="client")
    producer = connect()
    send_all(producer, queue, ["work"])
    assert consumer.collector.wait_for(lambda: consumer.collector.messages)
    consumer.begin("tx")
    consumer.ack(consumer.collector.messages[0].headers["ack"], transaction="tx", receipt="acked")
    consumer.collector.wait_for_receipt("acked")
    consumer.disconnect()
    other = connect()
    subscribe(other, queue)
    assert other.collector.wait_for(lambda: other.collector.messages)
    assert other.collector.messages[0].body == "work"
    assert other.collector.messages[0].headers["redelivered"] == "true"


def test_disconnect_aborts_open_transaction(connect, subscribe, unique, send_all):
    queue = unique("/queue/tx-disconnect.")
    consumer = connect()
    subscribe(consumer, queue)
    producer = connect()
    producer.begin("tx")
    producer.send(queue, "never", transaction="tx", receipt="held")
    producer.collector.wait_for_receipt("held")
    producer.disconnect()
    other = connect()
    send_all(other, queue, ["sentinel"])
    assert consumer.collector.wait_for_bodies(1) == ["sentinel"]


@pytest.mark.parametrize(
    "frames",
    [
        [("SEND", {"destination": "/queue/tx-errors", "transaction": "nope"})],
        [("ACK", {"id": "whatever", "transaction": "nope"})],
        [("COMMIT", {"transaction": "nope"})],
        [("ABORT", {"transaction": "nope"})],
        [("BEGIN", {"transaction": "t"}), ("COMMIT", {"transaction": "t"}), ("COMMIT", {"transaction": "t"})],
        [("BEGIN", {"transaction": "t"}), ("BEGIN", {"transaction": "t"})],
        [("BEGIN", {})],
    ],
    ids=["send-unknown", "ack-unknown", "commit-unknown", "abort-unknown", "commit-twice", "begin-twice", "begin-no-id"],
)
def test_transaction_misuse_is_an_error(raw, assert_serving, expect_error, frames):
    client = raw()
    assert client.connect().command == "CONNECTED"
    for command, headers in frames[:-1]:
        client.send_frame(command, {**headers, "receipt": "ok"})
        frame = client.read_frame()
        assert frame is not None and frame.command == "RECEIPT", frame
    command, headers = frames[-1]
    client.send_frame(command, {**headers, "receipt": "bad"})
    error = expect_error(client)
    assert error.headers.get("receipt-id") == "bad"
    assert_serving()


def test_error_in_one_connection_leaves_others_transactions_alone(connect, subscribe, unique, raw, expect_error):
    queue = unique("/queue/tx-isolated.")
    consumer = connect()
    subscribe(consumer, queue)
    producer = connect()
    producer.begin("shared-name")
    producer.send(queue, "kept", transaction="shared-name")
    client = raw()
    assert client.connect().command == "CONNECTED"
    # The same transaction name on another connection is another
    # transaction: it is unknown there.
    client.send_frame("COMMIT", {"transaction": "shared-name"})
    expect_error(client)
    time.sleep(0.1)
    assert consumer.collector.messages == []
    producer.commit("shared-name", receipt="committed")
    producer.collector.wait_for_receipt("committed")
    assert consumer.collector.wait_for(lambda: consumer.collector.messages)
    assert consumer.collector.bodies() == ["kept"]


@pytest.mark.parametrize(
    "bad",
    [
        ("SEND", {"destination": "/nowhere/at-all"}),
        ("SEND", {"destination": "{queue}", "expires": "soon"}),
        ("ACK", {"id": "no-such-message"}),
    ],
    ids=["bad-destination", "bad-expiry", "unknown-ack"],
)
def test_bad_frame_in_transaction_commits_nothing(
    connect, subscribe, unique, send_all, raw, expect_error, assert_serving, bad
):
    """
    A transaction is all or nothing: a frame in it that cannot take effect
    is an ERROR, and the connection's end aborts what the transaction held.
    """
    queue = unique("/queue/tx-atomic.")
    consumer = connect()
    subscribe(consumer, queue)
    client = raw()
    assert client.connect().command == "CONNECTED"
    client.send_frame("BEGIN", {"transaction": "tx"})
    client.send_frame("SEND", {"destination": queue, "transaction": "tx"}, b"first")
    command, headers = bad
    headers = {name: value.format(queue=queue) for name, value in headers.items()}
    client.send_frame(command, {**headers, "transaction": "tx"}, b"second" if command == "SEND" else b"")
    client.send_frame("COMMIT", {"transaction": "tx", "receipt": "committed"})
    error = expect_error(client)
    assert error.headers.get("receipt-id") in (None, "committed")
    other = connect()
    send_all(other, queue, ["sentinel"])
    assert consumer.collector.wait_for_bodies(1) == ["sentinel"]
    assert_serving()
