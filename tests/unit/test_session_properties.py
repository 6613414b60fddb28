"""
Random frame sequences from several clients never make the broker fail
internally: every problem is a StompError answered with an ERROR frame, and
no queue message is lost or duplicated.
"""

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.logger import globalLogPublisher

from stompd.testing.harness import FakeClient, make_broker

DESTINATIONS = ["/queue/a", "/queue/a", "/queue/b-user1", "/topic/t.x", "/topic/t.*", "/temp-queue/r"]

subscribe = st.tuples(
    st.just("SUBSCRIBE"),
    st.sampled_from(DESTINATIONS),
    st.sampled_from(["s1", "s2"]),
    st.sampled_from(["auto", "client", "client-individual"]),
)
send = st.tuples(st.just("SEND"), st.sampled_from(DESTINATIONS), st.sampled_from([None, None, None, "tx"]))
ack = st.tuples(st.sampled_from(["ACK", "ACK", "NACK"]), st.integers(0, 5), st.sampled_from([None, None, "tx"]))
transaction = st.tuples(st.sampled_from(["BEGIN", "COMMIT", "ABORT"]))
unsubscribe = st.tuples(st.just("UNSUBSCRIBE"), st.sampled_from(["s1", "s2"]))
ending = st.one_of(
    st.tuples(st.just("SEND"), st.just("/bogus"), st.just(None)),
    st.tuples(st.sampled_from(["DISCONNECT", "DROP"])),
)
# Mostly frames that work, so that runs reach deep states; now and then one
# that ends the connection.
_BY_NUMBER = [send] * 7 + [subscribe] * 3 + [ack] * 6 + [transaction] * 2 + [unsubscribe, ending]
frame = st.integers(0, len(_BY_NUMBER) - 1).flatmap(_BY_NUMBER.__getitem__)


def play(client: FakeClient, step, acks: list[str]) -> None:
    """
    Send the frame C{step} describes. Steps that would only be refused in
    the client's state (a transaction not begun, an ACK with nothing
    delivered, a subscription id in use) are adapted, so that most runs
    go deep; the rare steps still end connections on purpose.
    """
    session = client.session
    command, *args = step
    in_transaction = "tx" in session._transactions
    if command == "SUBSCRIBE":
        destination, sub_id, ack = args
        if sub_id in session.subscriptions:
            sub_id += "-again"
        if sub_id in session.subscriptions:
            return
        client.send(command, {"destination": destination, "id": sub_id, "ack": ack, "prefetch-count": "2"})
    elif command == "UNSUBSCRIBE":
        client.send(command, {"id": args[0]})
    elif command == "SEND":
        destination, transaction = args
        headers = {"destination": destination, "reply-to": "/temp-queue/r"}
        if transaction and in_transaction:
            headers["transaction"] = transaction
        client.send(command, headers, b"body")
    elif command in ("ACK", "NACK"):
        index, transaction = args
        if not acks:
            return
        # Ids the client was given, some of them settled already.
        headers = {"id": acks[index % len(acks)]}
        if transaction and in_transaction:
            headers["transaction"] = transaction
        client.send(command, headers)
    elif command in ("BEGIN", "COMMIT", "ABORT"):
        if (command == "BEGIN") == in_transaction:
            return
        client.send(command, {"transaction": "tx", "receipt": "r"})
    elif command == "DISCONNECT":
        client.send(command, {"receipt": "bye"})
    elif command == "DROP":
        client.disconnect()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), frame), max_size=40))
def test_random_frames_never_fail_internally(steps):
    failures = []

    def observe(event):
        if "log_failure" in event:
            failures.append(event["log_failure"])

    globalLogPublisher.addObserver(observe)
    try:
        run(steps)
    finally:
        globalLogPublisher.removeObserver(observe)
    # Errors in dispatch are logged, not raised: none may have happened.
    assert failures == []


def run(steps) -> None:
    broker = make_broker()
    clients = [FakeClient(broker) for _ in range(3)]
    for client in clients:
        client.connect()
    acks = [[] for _ in clients]
    for who, step in steps:
        client = clients[who]
        if client.closed or client.session._gone:
            # The broker closed it (or it dropped): the connection ends.
            client.disconnect()
            client = clients[who] = FakeClient(broker)
            client.connect()
            acks[who] = []
        play(client, step, acks[who])
        for received in client.frames():
            assert received.command in ("MESSAGE", "RECEIPT", "ERROR"), received
            if received.command == "ERROR":
                assert received.headers["message"] != "internal error", received.body
            if received.command == "MESSAGE" and "ack" in received.headers:
                acks[who].append(received.headers["ack"])
    for client in clients:
        client.disconnect()
    # Everyone gone: what is left in the queues is waiting, none in flight.
    store = broker.store
    for name, stored in store._queues.items():
        assert not stored.in_flight, name
