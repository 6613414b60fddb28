"""
[queues] max-depth and its overflow actions on the in-memory harness:
reject (an ERROR with receipt-id, nothing stored), drop-oldest, and
dead-letter (to the queue's DLQ with dead-letter-reason:max-depth).
"""

from stompd.config import parse_config
from stompd.testing.harness import connected_client, make_broker


def broker_with(overflow: str, depth: int = 3):
    return make_broker(parse_config(f'[queues]\nmax-depth = {depth}\noverflow = "{overflow}"\n'))


def send_all(producer, destination: str, count: int) -> list:
    for n in range(count):
        producer.send("SEND", {"destination": destination, "receipt": f"r{n}"}, b"m%d" % n)
    return producer.frames()


def consume(broker, destination: str) -> list[bytes]:
    consumer = connected_client(broker)
    consumer.send("SUBSCRIBE", {"destination": destination, "id": "c"})
    return [frame.body for frame in consumer.frames() if frame.command == "MESSAGE"]


def test_reject_refuses_the_send_over_the_limit_with_an_error():
    broker = broker_with("reject")
    frames = send_all(connected_client(broker), "/queue/jobs", 4)
    assert [f.command for f in frames] == ["RECEIPT", "RECEIPT", "RECEIPT", "ERROR"]
    error = frames[-1]
    assert (error.headers["message"], error.headers["receipt-id"]) == ("queue full", "r3")
    assert consume(broker, "/queue/jobs") == [b"m0", b"m1", b"m2"]
    assert broker.admission.log.hits["max-depth"] == 1


def test_reject_lets_sends_in_again_once_consumers_drained_the_queue():
    broker = broker_with("reject", depth=2)
    send_all(connected_client(broker), "/queue/jobs", 2)
    assert consume(broker, "/queue/jobs") == [b"m0", b"m1"]
    assert [f.command for f in send_all(connected_client(broker), "/queue/jobs", 1)] == ["RECEIPT"]


def test_drop_oldest_keeps_the_newest():
    broker = broker_with("drop-oldest")
    frames = send_all(connected_client(broker), "/queue/jobs", 5)
    assert [f.command for f in frames] == ["RECEIPT"] * 5
    assert consume(broker, "/queue/jobs") == [b"m2", b"m3", b"m4"]


def test_dead_letter_moves_the_oldest_to_the_dead_letter_queue():
    broker = broker_with("dead-letter")
    send_all(connected_client(broker), "/queue/jobs", 4)
    assert consume(broker, "/queue/jobs") == [b"m1", b"m2", b"m3"]
    consumer = connected_client(broker)
    consumer.send("SUBSCRIBE", {"destination": "/queue/jobs.DLQ", "id": "d"})
    (dead,) = [frame for frame in consumer.frames() if frame.command == "MESSAGE"]
    assert dead.body == b"m0"
    assert dead.headers["dead-letter-reason"] == "max-depth"
    assert dead.headers["original-destination"] == "/queue/jobs"


def test_without_max_depth_nothing_is_limited():
    broker = make_broker()
    frames = send_all(connected_client(broker), "/queue/jobs", 50)
    assert [f.command for f in frames] == ["RECEIPT"] * 50
