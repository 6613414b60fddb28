"""
The fanout connector on the in-memory harness, its upstreams in memory and
time on a Clock: the minAckCount quorum and gate, the buffer, giving up
on one upstream, and the loop and duplicate rules.
"""

from twisted.internet.task import Clock

from stompd.connectors import fanout, static
from stompd.connectors.fanout import FanoutConnector
from stompd.connectors.static import StaticDiscovery
from stompd.testing.harness import FakeClient, make_broker
from tests.support.upstream import FakeEndpoint

UPSTREAMS = ("tcp://127.0.0.1:1", "tcp://127.0.0.1:2")


class Fanout:
    """
    A broker with a fanout connector to two in-memory upstreams.
    """

    def __init__(self, options: str = "minAckCount=2", buffer: int = 0, send_timeout: float = 30.0) -> None:
        uri = f"fanout://(static:({','.join(UPSTREAMS)}))?{options}"
        settings = fanout.parse_config(
            {"name": "fan", "uri": uri, "prefixes": ["/topic/", "/queue/"], "heart-beat": [0, 0],
             "buffer": buffer, "send-timeout": send_timeout}
        )
        self.clock = Clock()
        self.endpoints = {uri: FakeEndpoint() for uri in UPSTREAMS}
        agent = StaticDiscovery(static.parse_config({"uri": settings.options.discovery}))
        self.connector = FanoutConnector(settings, self.clock, agent, endpoint_for=self.endpoints.__getitem__)
        self.broker = make_broker(clock=self.clock, connectors=[self.connector])
        self.broker.startService()

    def peer(self, n: int):
        return self.endpoints[UPSTREAMS[n]].connections[-1]

    def accept(self, *which: int) -> None:
        for n in which or range(len(UPSTREAMS)):
            self.peer(n).accept()
            self.peer(n).frames()

    def client(self) -> FakeClient:
        made = FakeClient(self.broker)
        made.connect()
        return made


def sends(peer):
    return [frame for frame in peer.frames() if frame.command == "SEND"]


def test_a_topic_receipt_waits_for_min_ack_count_upstream_receipts():
    setup = Fanout("minAckCount=2")
    setup.accept()
    producer = setup.client()
    producer.send("SEND", {"destination": "/topic/news", "receipt": "r"}, b"extra")
    first, second = (sends(setup.peer(n)) for n in range(2))
    (sent,) = first
    assert sent.body == b"extra"
    assert sent.headers["stompd-origin"] == setup.broker.node_id
    assert sent.headers["stompd-hops"] == "1"
    assert sent.headers["stompd-message-id"] == second[0].headers["stompd-message-id"]
    setup.peer(0).send("RECEIPT", {"receipt-id": sent.headers["receipt"]})
    assert producer.frames() == []
    setup.peer(1).send("RECEIPT", {"receipt-id": second[0].headers["receipt"]})
    assert [f.command for f in producer.frames()] == ["RECEIPT"]


def test_with_min_ack_count_one_the_first_receipt_is_enough():
    setup = Fanout("minAckCount=1")
    setup.accept()
    producer = setup.client()
    producer.send("SEND", {"destination": "/topic/news", "receipt": "r"}, b"")
    (sent,) = sends(setup.peer(1))
    setup.peer(1).send("RECEIPT", {"receipt-id": sent.headers["receipt"]})
    assert [f.command for f in producer.frames()] == ["RECEIPT"]


def test_a_quorum_that_cannot_be_reached_is_an_error():
    setup = Fanout("minAckCount=2")
    setup.accept()
    producer = setup.client()
    producer.send("SEND", {"destination": "/topic/news", "receipt": "r"}, b"")
    (sent,) = sends(setup.peer(0))
    setup.peer(0).send("ERROR", {"message": "no", "receipt-id": sent.headers["receipt"]})
    (error,) = producer.frames()
    assert (error.command, error.headers["message"]) == ("ERROR", "connector fan: too few upstreams confirmed")
    assert error.headers["receipt-id"] == "r"


def test_below_min_ack_count_sends_wait_in_the_buffer_then_go():
    setup = Fanout("minAckCount=2", buffer=1)
    setup.accept(0)
    producer = setup.client()
    producer.send("SEND", {"destination": "/topic/news"}, b"held")
    assert sends(setup.peer(0)) == []
    assert setup.connector.backlog() == 1
    other = setup.client()
    other.send("SEND", {"destination": "/topic/news", "receipt": "full"}, b"no room")
    (error,) = other.frames()
    assert error.headers["message"] == "connector fan: upstream not connected"
    setup.peer(1).accept()
    assert [frame.body for frame in sends(setup.peer(0))] == [b"held"]
    assert [frame.body for frame in sends(setup.peer(1))] == [b"held"]


def test_a_buffered_send_waits_at_most_send_timeout():
    setup = Fanout("minAckCount=2", buffer=5, send_timeout=2.0)
    setup.accept(0)
    producer = setup.client()
    producer.send("SEND", {"destination": "/topic/news", "receipt": "r"}, b"")
    setup.clock.advance(2.0)
    (error,) = producer.frames()
    assert error.headers["message"] == "connector fan: upstream not connected"
    assert error.headers["receipt-id"] == "r"


def test_past_max_reconnect_attempts_one_upstream_is_given_up_and_not_the_others():
    setup = Fanout("minAckCount=1&maxReconnectAttempts=2&initialReconnectDelay=100&useExponentialBackOff=false")
    setup.accept(0)
    refusing = setup.endpoints[UPSTREAMS[1]]
    refusing.refusing = True
    setup.peer(1).drop()
    for _ in range(5):
        setup.clock.advance(0.1)
    assert refusing.attempts == 3
    assert list(setup.connector.upstreams) == [UPSTREAMS[0]]
    producer = setup.client()
    producer.send("SEND", {"destination": "/topic/news"}, b"on")
    assert [frame.body for frame in sends(setup.peer(0))] == [b"on"]


def peer_send(client, message_id: str, destination: str = "/topic/news", hops: str = "1", origin: str = "other-node"):
    client.send(
        "SEND",
        {"destination": destination, "stompd-origin": origin, "stompd-message-id": message_id,
         "stompd-hops": hops, "receipt": message_id},
        b"fanned",
    )


def test_a_message_from_a_peer_is_delivered_once_and_passed_on_with_a_hop_more():
    setup = Fanout("minAckCount=1")
    setup.accept()
    subscriber = setup.client()
    subscriber.send("SUBSCRIBE", {"destination": "/topic/news", "id": "1"})
    peer = setup.client()
    peer_send(peer, "other-node:1")
    peer_send(peer, "other-node:1")
    assert [f.command for f in peer.frames()] == ["RECEIPT", "RECEIPT"]
    (delivered,) = [f for f in subscriber.frames() if f.command == "MESSAGE"]
    assert "stompd-origin" not in delivered.headers
    (onward,) = sends(setup.peer(0))
    assert onward.headers["stompd-hops"] == "2"
    assert onward.headers["stompd-message-id"] == "other-node:1"


def test_a_message_back_at_its_origin_or_out_of_hops_goes_no_further():
    setup = Fanout("minAckCount=1")
    setup.accept()
    subscriber = setup.client()
    subscriber.send("SUBSCRIBE", {"destination": "/topic/news", "id": "1"})
    peer = setup.client()
    peer_send(peer, "mine:1", origin=setup.broker.node_id)
    assert [f for f in subscriber.frames() if f.command == "MESSAGE"] == []
    peer_send(peer, "other-node:2", hops=str(fanout.MAX_HOPS))
    assert len([f for f in subscriber.frames() if f.command == "MESSAGE"]) == 1
    assert sends(setup.peer(0)) == []


def test_a_queue_message_from_a_peer_stays_here():
    setup = Fanout("minAckCount=1")
    setup.accept()
    peer = setup.client()
    peer_send(peer, "other-node:3", destination="/queue/work")
    assert sends(setup.peer(0)) == [] and sends(setup.peer(1)) == []
    consumer = setup.client()
    consumer.send("SUBSCRIBE", {"destination": "/queue/work", "id": "1"})
    assert [f.body for f in consumer.frames() if f.command == "MESSAGE"] == [b"fanned"]
