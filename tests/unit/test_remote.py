"""
The broker's side of connectors on the in-memory harness: SENDs and
SUBSCRIBEs to owned destinations go to their connector, its deliveries
reach the client, ACKs and NACKs go back, and the facade publishes
without looping back.
"""

from twisted.internet.defer import Deferred, fail
from zope.interface.verify import verifyObject

from stompd.errors import StompError
from stompd.interfaces import IBrokerFacade, IRemoteSubscription
from stompd.testing.harness import RecordingConnector, connected_client, make_broker


def started(connector):
    broker = make_broker(connectors=[connector])
    broker.startService()
    return broker


def test_connectors_start_after_the_store_with_the_facade_and_stop_before_it():
    connector = RecordingConnector()
    broker = started(connector)
    assert connector.calls == ["start"]
    verifyObject(IBrokerFacade, connector.broker)
    assert connector.broker.node_id == broker.node_id
    broker.stopService()
    assert connector.calls == ["start", "stop"]


def test_a_send_to_an_owned_destination_goes_to_the_connector_and_its_receipt_waits():
    connector = RecordingConnector()
    connector.sent = Deferred()
    broker = started(connector)
    producer = connected_client(broker)
    producer.send("SEND", {"destination": "/queue/ext.orders", "receipt": "r1"}, b"order")
    assert connector.calls[-1] == ("send", "/", "/queue/ext.orders", b"order")
    assert producer.frames() == []
    connector.sent.callback(None)
    assert [(f.command, f.headers["receipt-id"]) for f in producer.frames()] == [("RECEIPT", "r1")]
    assert "/queue/ext.orders" not in broker.vhosts["/"].queues


def test_a_send_the_connector_cannot_forward_gets_an_error_with_receipt_id():
    connector = RecordingConnector()
    connector.sent = fail(StompError("connector up: upstream not connected", "down"))
    producer = connected_client(started(connector))
    producer.send("SEND", {"destination": "/queue/ext.orders", "receipt": "r1"}, b"order")
    (error,) = producer.frames()
    assert error.command == "ERROR"
    assert error.headers["message"] == "connector up: upstream not connected"
    assert error.headers["receipt-id"] == "r1"


def test_other_destinations_stay_local():
    connector = RecordingConnector()
    broker = started(connector)
    producer = connected_client(broker)
    producer.send("SEND", {"destination": "/queue/orders"}, b"local")
    assert connector.calls == ["start"]
    assert "/queue/orders" in broker.vhosts["/"].queues


def test_upstream_deliveries_reach_the_subscriber_and_acks_go_back():
    connector = RecordingConnector()
    consumer = connected_client(started(connector))
    consumer.send(
        "SUBSCRIBE",
        {"destination": "/queue/ext.jobs", "id": "7", "ack": "client-individual", "prefetch-count": "5", "receipt": "s"},
    )
    assert [f.command for f in consumer.frames()] == ["RECEIPT"]
    (remote,) = connector.subscriptions
    verifyObject(IRemoteSubscription, remote)
    assert (remote.vhost, remote.destination, remote.acks, remote.prefetch) == ("/", "/queue/ext.jobs", True, 5)
    assert remote.headers["prefetch-count"] == "5"
    remote.deliver({"destination": "/queue/ext.jobs", "message-id": "up-1", "priority": "4"}, b"job 1", "token-1")
    remote.deliver({"destination": "/queue/ext.jobs", "message-id": "up-2"}, b"job 2", "token-2")
    first, second = consumer.frames()
    assert (first.command, first.body, first.headers["subscription"]) == ("MESSAGE", b"job 1", "7")
    assert first.headers["priority"] == "4"
    assert first.headers["message-id"] == "up-1"
    # A redelivery, as a stompd upstream marks it: one redelivered line.
    remote.deliver(
        {"destination": "/queue/ext.jobs", "message-id": "up-3", "redelivered": "true", "delivery-count": "2"}, b"", "t3"
    )
    assert consumer.transport.value().count(b"redelivered:") == 1
    (again,) = consumer.frames()
    assert again.headers["redelivered"] == "true"
    assert again.headers["delivery-count"] == "2"
    consumer.send("ACK", {"id": first.headers["ack"]})
    consumer.send("NACK", {"id": second.headers["ack"], "requeue": "false"})
    assert connector.calls[-2:] == [("settle", ["token-1"], "ack"), ("settle", ["token-2"], "reject")]


def test_unsubscribe_and_disconnect_reach_the_connector():
    connector = RecordingConnector()
    consumer = connected_client(started(connector))
    consumer.send("SUBSCRIBE", {"destination": "/queue/ext.a", "id": "1"})
    consumer.send("SUBSCRIBE", {"destination": "/exchange/amq.topic/prices", "id": "2"})
    consumer.send("UNSUBSCRIBE", {"id": "1"})
    assert connector.calls[-1] == ("unsubscribe", "/queue/ext.a")
    consumer.disconnect()
    assert connector.calls[-1] == ("unsubscribe", "/exchange/amq.topic/prices")
    (_, remote) = connector.subscriptions
    # Late deliveries after the client left go nowhere.
    remote.deliver({"destination": "/exchange/amq.topic/prices", "message-id": "late"}, b"", None)
    assert consumer.frames() == []


def test_the_facade_publishes_locally_without_handing_it_back_to_its_origin():
    # A connector that leaves subscriptions local (as fanout does).
    connector = RecordingConnector(prefixes=("/topic/",), relays_subscriptions=False)
    broker = started(connector)
    subscriber = connected_client(broker)
    subscriber.send("SUBSCRIBE", {"destination": "/topic/news", "id": "1"})
    assert ("subscribe", "/topic/news") not in connector.calls
    published = connector.broker.publish("/", {"destination": "/topic/news"}, b"from upstream", origin="up")
    assert published.called
    assert [f.body for f in subscriber.frames()] == [b"from upstream"]
    assert not any(call[0] == "send" for call in connector.calls if isinstance(call, tuple))
    # From anywhere else, the connector gets it.
    connector.broker.publish("/", {"destination": "/topic/news"}, b"from elsewhere", origin="other")
    assert connector.calls[-1] == ("send", "/", "/topic/news", b"from elsewhere")
