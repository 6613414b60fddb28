"""
@stomp/stompjs, the client browser pages use, against the installed broker:
run in Node (with C{ws} as its WebSocket) by C{tests/js/stompjs_client.mjs},
next to stomp.py over TCP and raw WebSocket clients on the same broker.
"""

import base64
import json
import uuid

import pytest

from tests.support.stompjs import Script, find_node


@pytest.fixture(scope="module")
def node():
    return find_node()


@pytest.fixture
def stompjs(node, broker):
    """
    Start the script: C{stompjs(SCENARIO, ARG ...)} against the module's
    broker's C{/ws}; each is killed at teardown if still running.
    """
    started = []

    def start(scenario: str, *args: str, url: str | None = None) -> Script:
        script = Script(node, scenario, url or f"ws://127.0.0.1:{broker.ws_port}/ws", *args)
        started.append(script)
        return script

    yield start
    for script in started:
        script.stop()


def decoded(message: dict) -> bytes:
    return base64.b64decode(message["bytes"])


@pytest.mark.parametrize(
    "version, subprotocol",
    [("1.0", "v10.stomp"), ("1.1", "v11.stomp"), ("1.2", "v12.stomp")],
)
def test_each_subprotocol_alone_gives_its_version(stompjs, version, subprotocol):
    result = stompjs("version", version).result()
    assert result["protocol"] == subprotocol
    assert result["version"] == version
    assert result["server"].startswith("stompd/")
    assert result["body"] == f"hello {version}"


def test_publish_and_subscribe_on_a_topic(stompjs):
    result = stompjs("pubsub").result()
    for got in (result["a"], result["b"]):
        assert [m["body"] for m in got] == ["one", "two", "three: ünïcödé"]
        assert [m["headers"]["n"] for m in got] == ["0", "1", "2"]
        # A colon in a value survives 1.2 escaping both ways.
        assert {m["headers"]["x-colon"] for m in got} == {"a:b"}
        assert decoded(got[2]) == "three: ünïcödé".encode("utf-8")
    # Both subscribers got the same messages.
    assert [m["headers"]["message-id"] for m in result["a"]] == [m["headers"]["message-id"] for m in result["b"]]


def test_queue_with_client_individual_ack_and_a_nack(stompjs):
    deliveries = stompjs("queueAck").result()["deliveries"]
    assert [d["body"] for d in deliveries] == ["m0", "m1", "m2", "m3", "m2"]
    assert [d["redelivered"] for d in deliveries] == [None, None, None, None, "true"]
    # 1.2 ack ids, one per message; the redelivery keeps its message's.
    assert all(d["ack"] for d in deliveries)
    assert len({d["ack"] for d in deliveries[:4]}) == 4


def test_receipts(stompjs):
    result = stompjs("receipts").result()
    assert result["order"] == ["r-sub", "r-send", "r-unsub"]
    assert result["got"] == ["with receipt"]


def test_heart_beats_keep_an_idle_connection_up(stompjs):
    # The module's broker sends at most every 100 ms: it follows the 1000
    # ms stompjs asks for.
    result = stompjs("heartbeats", "5000").result()
    assert result["closes"] == []
    assert result["connected"] is True
    assert result["got"] == ["after the quiet"]
    assert result["heartbeatsReceived"] >= 3, result


def subscriber(stompjs, destination: str, count: int) -> Script:
    """
    A stompjs subscriber to C{destination}, ready for C{count} messages.
    """
    script = stompjs("subscribe", destination, str(count))
    assert script.next() == {"ready": True}
    return script


def test_two_frames_in_one_websocket_message(stompjs, raw_ws):
    topic = f"/topic/two.{uuid.uuid4().hex[:8]}"
    listening = subscriber(stompjs, topic, 2)
    sender = raw_ws()
    assert sender.connect().command == "CONNECTED"
    sender.send(
        b"SEND\ndestination:%s\nn:1\n\nfirst\0SEND\ndestination:%s\nn:2\nreceipt:both\n\nsecond\0"
        % (topic.encode(), topic.encode())
    )
    receipt = sender.read_frame()
    assert receipt is not None and receipt.command == "RECEIPT", receipt
    assert receipt.headers["receipt-id"] == "both"
    messages = listening.result()["messages"]
    assert [(m["headers"]["n"], m["body"]) for m in messages] == [("1", "first"), ("2", "second")]


# What a message carries, apart from the headers of one subscription.
PER_SUBSCRIPTION = {"subscription", "ack"}


def test_tcp_publisher_to_stompjs_subscriber(stompjs, connect, subscribe):
    topic = f"/topic/cross.{uuid.uuid4().hex[:8]}"
    listening = subscriber(stompjs, topic, 2)
    tcp_subscriber = connect()
    subscribe(tcp_subscriber, topic)
    publisher = connect()
    custom = {"x-trace": "abc-123", "x-colon": "k:v", "x-unicode": "grüße", "priority": "7"}
    publisher.send(topic, '{"hello": "world"}', content_type="application/json", headers=custom)
    publisher.send(topic, "plain", headers={"x-trace": "second"}, receipt="sent")
    assert publisher.collector.wait_for(lambda: "sent" in publisher.collector.receipts)
    got = listening.result()["messages"]
    assert tcp_subscriber.collector.wait_for(lambda: len(tcp_subscriber.collector.messages) == 2)
    assert [m["body"] for m in got] == ['{"hello": "world"}', "plain"]
    first = got[0]["headers"]
    for name, value in custom.items():
        assert first[name] == value
    assert first["content-type"] == "application/json"
    assert first["destination"] == topic
    assert first["content-length"] == str(len('{"hello": "world"}'))
    # The WebSocket subscriber sees exactly what a TCP subscriber sees.
    for over_ws, over_tcp in zip(got, tcp_subscriber.collector.messages):
        ws_headers = {k: v for k, v in over_ws["headers"].items() if k not in PER_SUBSCRIPTION}
        tcp_headers = {k: v for k, v in over_tcp.headers.items() if k not in PER_SUBSCRIPTION}
        assert ws_headers == tcp_headers


def test_stompjs_publisher_to_tcp_subscriber(stompjs, connect, subscribe):
    queue_name = f"/queue/cross.{uuid.uuid4().hex[:8]}"
    tcp_subscriber = connect(auto_decode=False)
    subscribe(tcp_subscriber, queue_name)
    headers = {"content-type": "text/plain;charset=utf-8", "x-trace": "from-js", "x-colon": "a:b", "x-unicode": "ñ"}
    stompjs("publish", queue_name, json.dumps(headers), "héllo from stompjs").result()
    # Bytes that are not UTF-8 too.
    body = bytes(range(256))
    binary_headers = {"content-type": "application/octet-stream"}
    stompjs("publish", queue_name, json.dumps(binary_headers), base64.b64encode(body).decode(), "binary").result()
    messages = tcp_subscriber.collector.messages
    assert tcp_subscriber.collector.wait_for(lambda: len(messages) == 2)
    text, binary = messages
    assert text.body == "héllo from stompjs".encode("utf-8")
    for name, value in headers.items():
        assert text.headers[name] == value
    assert text.headers["destination"] == queue_name
    assert "receipt" not in text.headers
    assert binary.body == body
    assert binary.headers["content-type"] == "application/octet-stream"
    assert binary.headers["content-length"] == "256"
