"""
Authorization rules: the pattern logic, and every path a frame can take
(SEND, SUBSCRIBE, wildcards, temp-queues and reply-to, transactions,
durable subscriptions, STOMP frames, destinations connectors own) on the
in-memory harness.
"""

import pytest

from stompd.broker.authorization import Authorization, covers, matches, overlap, segments
from stompd.config import parse_config
from stompd.testing.harness import FakeClient, RecordingConnector, connected_client, make_broker


@pytest.mark.parametrize(
    "pattern, name, expected",
    [
        ("/topic/prices.#", "/topic/prices", True),
        ("/topic/prices.#", "/topic/prices.eu.fr", True),
        ("/topic/prices.*", "/topic/prices.eu", True),
        ("/topic/prices.*", "/topic/prices.eu.fr", False),
        ("/queue/orders.*", "/queue/orders.new", True),
        ("/queue/orders.*", "/queue/orders", False),
        ("/topic/>", "/topic/a.b", True),
    ],
)
def test_rule_patterns_match_destinations(pattern, name, expected):
    assert matches(segments(pattern), segments(name)) is expected


def test_patterns_overlap_and_cover():
    assert overlap(segments("/topic/#"), segments("/topic/prices.*"))
    assert overlap(segments("/topic/*.eu"), segments("/topic/prices.*"))
    assert not overlap(segments("/topic/news.#"), segments("/topic/prices.*"))
    assert covers(segments("/topic/prices.#"), segments("/topic/prices.*"))
    assert not covers(segments("/topic/prices.*"), segments("/topic/prices.#"))
    assert not covers(segments("/topic/prices.*"), segments("/topic/#"))


RULES = """
[auth]
anonymous = true

[authorization]
default = "deny"

[[authorization.rules]]
users = ["guest"]
destinations = ["/queue/secret"]
permissions = ["read", "write"]
access = "deny"

[[authorization.rules]]
users = ["guest"]
vhost = "/"
destinations = ["/queue/orders.*", "/topic/prices.#"]
permissions = ["read", "write"]

[[authorization.rules]]
users = ["*"]
destinations = ["/topic/public"]
permissions = ["read"]
"""


def broker_with(text: str = RULES):
    return make_broker(parse_config(text))


def error_of(frames) -> dict:
    (error,) = [frame for frame in frames if frame.command == "ERROR"]
    return error.headers


def test_a_permitted_send_and_subscribe_work():
    broker = broker_with()
    consumer = connected_client(broker)
    consumer.send("SUBSCRIBE", {"destination": "/queue/orders.new", "id": "1", "receipt": "s"})
    producer = connected_client(broker)
    producer.send("SEND", {"destination": "/queue/orders.new", "receipt": "r"}, b"ok")
    assert [f.command for f in producer.frames()] == ["RECEIPT"]
    assert [f.body for f in consumer.frames() if f.command == "MESSAGE"] == [b"ok"]


@pytest.mark.parametrize(
    "command, headers, permission, destination",
    [
        ("SEND", {"destination": "/queue/other"}, "write", "/queue/other"),
        ("SEND", {"destination": "/queue/secret"}, "write", "/queue/secret"),
        ("SUBSCRIBE", {"destination": "/queue/secret", "id": "1"}, "read", "/queue/secret"),
        ("SEND", {"destination": "/topic/public"}, "write", "/topic/public"),
        ("SUBSCRIBE", {"destination": "/topic/news.#", "id": "1"}, "read", "/topic/news.#"),
    ],
)
def test_a_refused_frame_gets_an_error_naming_permission_and_destination_then_close(command, headers, permission, destination):
    broker = broker_with()
    refused = connected_client(broker)
    refused.send(command, {**headers, "receipt": "r"}, b"")
    error = error_of(refused.frames())
    assert error["message"] == f"{permission} access to {destination} refused"
    assert error["receipt-id"] == "r"
    assert refused.closed


def test_everyone_rules_and_anonymous_clients():
    broker = broker_with()
    reader = connected_client(broker)
    reader.send("SUBSCRIBE", {"destination": "/topic/public", "id": "1", "receipt": "s"})
    assert [f.command for f in reader.frames()] == ["RECEIPT"]
    # An anonymous client is not an authenticated user: only default.
    anonymous = FakeClient(broker)
    anonymous.send("CONNECT", {"accept-version": "1.2"})
    anonymous.frames()
    anonymous.send("SUBSCRIBE", {"destination": "/topic/public", "id": "1"})
    assert error_of(anonymous.frames())["message"] == "read access to /topic/public refused"


def test_a_wildcard_subscription_gets_only_what_the_user_may_read():
    broker = broker_with()
    subscriber = connected_client(broker)
    subscriber.send("SUBSCRIBE", {"destination": "/topic/#", "id": "1", "receipt": "s"})
    assert [f.command for f in subscriber.frames()] == ["RECEIPT"]
    publisher = connected_client(broker, **{})
    publisher.send("SEND", {"destination": "/topic/prices.eu"}, b"readable")
    # Published by the broker itself (as another node or a connector would):
    broker.vhosts["/"].topics.publish("news", _message(broker, "/topic/news"))
    assert [f.body for f in subscriber.frames() if f.command == "MESSAGE"] == [b"readable"]


def _message(broker, destination):
    from stompd.broker.message import Message

    return Message("x-1", destination, {"destination": destination}, b"not readable")


def test_temp_queues_and_reply_to_need_no_rule():
    broker = broker_with()
    requester = connected_client(broker)
    requester.send("SUBSCRIBE", {"destination": "/temp-queue/answers", "id": "a", "receipt": "s"})
    requester.send("SEND", {"destination": "/queue/orders.rpc", "reply-to": "/temp-queue/answers"}, b"question")
    assert [f.command for f in requester.frames()] == ["RECEIPT"]
    server = connected_client(broker)
    server.send("SUBSCRIBE", {"destination": "/queue/orders.rpc", "id": "s"})
    (question,) = [f for f in server.frames() if f.command == "MESSAGE"]
    server.send("SEND", {"destination": question.headers["reply-to"], "receipt": "r"}, b"answer")
    assert [f.command for f in server.frames()] == ["RECEIPT"]
    assert [f.body for f in requester.frames() if f.command == "MESSAGE"] == [b"answer"]


def test_a_send_in_a_transaction_is_checked_when_it_arrives():
    broker = broker_with()
    producer = connected_client(broker)
    producer.send("BEGIN", {"transaction": "t"})
    producer.send("SEND", {"destination": "/queue/other", "transaction": "t", "receipt": "r"}, b"")
    assert error_of(producer.frames())["message"] == "write access to /queue/other refused"


def test_a_durable_wildcard_subscription_must_be_readable_whole():
    broker = broker_with()
    subscriber = connected_client(broker, **{"client-id": "c1"})
    subscriber.send("SUBSCRIBE", {"destination": "/topic/prices.#", "id": "1", "activemq.subscriptionName": "p", "receipt": "s"})
    assert [f.command for f in subscriber.frames()] == ["RECEIPT"]
    other = connected_client(broker, **{"client-id": "c2"})
    other.send("SUBSCRIBE", {"destination": "/topic/#", "id": "1", "activemq.subscriptionName": "all"})
    assert error_of(other.frames())["message"] == "read access to /topic/# refused"


def test_stomp_frames_and_groups_go_through_the_same_rules():
    text = RULES + """
[[authorization.rules]]
groups = ["ops"]
destinations = ["/queue/ops.#"]
permissions = ["write"]
"""
    broker = broker_with(text)
    ops = FakeClient(broker)
    ops.send("STOMP", {"accept-version": "1.2", "login": "guest", "passcode": "guest"})
    ops.frames()
    ops.send("SEND", {"destination": "/queue/ops.restart", "receipt": "r"}, b"")
    # guest is in no group here: the ops rule does not apply.
    assert error_of(ops.frames())["message"] == "write access to /queue/ops.restart refused"
    authorization = Authorization(parse_config(text).authorization)
    assert authorization.allows("alice", frozenset({"ops"}), "/", "/queue/ops.restart", "write")


def test_without_rules_everything_is_allowed():
    broker = make_broker()
    assert broker.authorization.open
    producer = connected_client(broker)
    producer.send("SEND", {"destination": "/queue/anything", "receipt": "r"}, b"")
    assert [f.command for f in producer.frames()] == ["RECEIPT"]


def test_guest_logs_in_only_from_loopback_unless_configured():
    from twisted.internet.address import IPv4Address
    from twisted.internet.testing import StringTransport

    def connect_from(broker, host):
        made = FakeClient(broker, transport=StringTransport(peerAddress=IPv4Address("TCP", host, 5000)))
        made.send("CONNECT", {"accept-version": "1.2", "login": "guest", "passcode": "guest"})
        return made.frames()[0]

    broker = make_broker()
    refused = connect_from(broker, "10.1.2.3")
    assert (refused.command, refused.headers["message"]) == ("ERROR", "bad credentials")
    assert "guest-loopback-only" in refused.body.decode()
    assert connect_from(broker, "127.0.0.1").command == "CONNECTED"
    assert connect_from(broker, "::1").command == "CONNECTED"
    opened = make_broker(parse_config("[auth]\nguest-loopback-only = false\n"))
    assert connect_from(opened, "10.1.2.3").command == "CONNECTED"


@pytest.mark.parametrize(
    "command, headers, permission",
    [
        ("SEND", {"destination": "/queue/ext.jobs"}, "write"),
        ("SUBSCRIBE", {"destination": "/queue/ext.jobs", "id": "1"}, "read"),
    ],
)
def test_destinations_a_connector_owns_go_through_the_same_rules(command, headers, permission):
    connector = RecordingConnector(prefixes=("/queue/ext.",))
    broker = make_broker(parse_config(RULES), connectors=[connector])
    broker.startService()
    refused = connected_client(broker)
    refused.send(command, {**headers, "receipt": "r"}, b"upstream")
    assert error_of(refused.frames())["message"] == f"{permission} access to /queue/ext.jobs refused"
    # Refused here: the upstream never saw it.
    assert connector.calls == ["start"]
