"""
The upstream STOMP client of connectors, on in-memory transports and a
Clock: handshake, receipts, buffering, timeouts, reconnect back-off and
re-subscribing.
"""

import pytest
from twisted.internet.task import Clock

from stompd.connectors.client import Upstream, backoff
from stompd.connectors.settings import UpstreamSettings
from stompd.errors import StompError
from tests.support.upstream import FakeEndpoint


def make_upstream(clock, endpoint, **settings):
    options = {"name": "up", "uri": "tcp://127.0.0.1:1", "prefixes": ("/queue/ext.",), "heart_beat": (0, 0)}
    options.update(settings)
    upstream = Upstream("up", endpoint, UpstreamSettings(**options), clock, backoff(0.01, 30.0))
    upstream.start()
    return upstream


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def endpoint():
    return FakeEndpoint()


def test_connect_frame_carries_login_host_and_heart_beat(clock, endpoint):
    make_upstream(clock, endpoint, login="alice", passcode="secret", host="vh", heart_beat=(5000, 7000))
    (connect,) = endpoint.connections[0].frames()
    assert connect.command == "CONNECT"
    assert connect.headers["login"] == "alice"
    assert connect.headers["passcode"] == "secret"
    assert connect.headers["host"] == "vh"
    assert connect.headers["heart-beat"] == "5000,7000"
    assert connect.headers["accept-version"] == "1.0,1.1,1.2"


def test_send_before_connected_fails_at_once_naming_the_connector(clock, endpoint):
    upstream = make_upstream(clock, endpoint)
    failures = []
    upstream.send({"destination": "/queue/ext.a"}, b"x", confirm=True).addErrback(failures.append)
    assert failures[0].check(StompError)
    assert failures[0].value.message == "connector up: upstream not connected"


def test_confirmed_send_fires_on_the_upstream_receipt(clock, endpoint):
    upstream = make_upstream(clock, endpoint)
    peer = endpoint.connections[0]
    peer.accept()
    peer.frames()
    sending = upstream.send({"destination": "/queue/ext.a"}, b"body", confirm=True)
    (send,) = peer.frames()
    assert send.command == "SEND"
    assert send.body == b"body"
    assert not sending.called
    assert upstream.backlog == 1
    peer.send("RECEIPT", {"receipt-id": send.headers["receipt"]})
    assert sending.called
    assert upstream.backlog == 0


def test_unconfirmed_send_after_send_timeout_is_an_error(clock, endpoint):
    upstream = make_upstream(clock, endpoint, send_timeout=5.0)
    peer = endpoint.connections[0]
    peer.accept()
    sending = upstream.send({"destination": "/queue/ext.a"}, b"", confirm=True)
    failures = []
    sending.addErrback(failures.append)
    clock.advance(4.9)
    assert not failures
    clock.advance(0.2)
    assert failures[0].value.message == "connector up: upstream did not confirm"


def test_lost_connection_fails_what_waits_for_a_receipt(clock, endpoint):
    upstream = make_upstream(clock, endpoint)
    peer = endpoint.connections[0]
    peer.accept()
    sending = upstream.send({"destination": "/queue/ext.a"}, b"", confirm=True)
    failures = []
    sending.addErrback(failures.append)
    peer.drop()
    assert failures[0].value.message == "connector up: upstream did not confirm"


def test_error_with_receipt_id_fails_that_send_with_the_upstreams_message(clock, endpoint):
    upstream = make_upstream(clock, endpoint)
    peer = endpoint.connections[0]
    peer.accept()
    peer.frames()
    sending = upstream.send({"destination": "/queue/ext.a"}, b"", confirm=True)
    (send,) = peer.frames()
    failures = []
    sending.addErrback(failures.append)
    peer.send("ERROR", {"message": "access refused", "receipt-id": send.headers["receipt"]}, b"no")
    assert failures[0].value.message == "connector up: upstream refused"
    assert "access refused" in failures[0].value.detail


def test_buffered_sends_wait_for_the_connection_then_go_in_order(clock, endpoint):
    endpoint.refusing = True
    upstream = make_upstream(clock, endpoint, buffer=2)
    first = upstream.send({"destination": "/queue/ext.a"}, b"1", confirm=False)
    second = upstream.send({"destination": "/queue/ext.a"}, b"2", confirm=False)
    third = upstream.send({"destination": "/queue/ext.a"}, b"3", confirm=False)
    refused = []
    third.addErrback(refused.append)
    assert refused[0].value.message == "connector up: upstream not connected"
    endpoint.refusing = False
    clock.advance(0.01)
    peer = endpoint.connections[0]
    peer.accept()
    assert [frame.body for frame in peer.frames() if frame.command == "SEND"] == [b"1", b"2"]
    assert first.called and second.called


def test_buffered_send_waits_at_most_send_timeout(clock, endpoint):
    endpoint.refusing = True
    upstream = make_upstream(clock, endpoint, buffer=1, send_timeout=3.0)
    waiting = upstream.send({"destination": "/queue/ext.a"}, b"1", confirm=True)
    failures = []
    waiting.addErrback(failures.append)
    clock.advance(3.0)
    assert failures[0].value.message == "connector up: upstream not connected"


def test_reconnect_backs_off_exponentially_up_to_the_maximum():
    delay = backoff(0.01, 30.0)
    assert [delay(n) for n in (1, 2, 3, 4)] == [0.01, 0.02, 0.04, 0.08]
    assert delay(40) == 30.0
    assert backoff(0.5, 30.0, exponential=False)(7) == 0.5


def test_refused_connections_are_retried_with_back_off(clock, endpoint):
    endpoint.refusing = True
    make_upstream(clock, endpoint)
    assert endpoint.attempts == 1
    clock.advance(0.01)
    assert endpoint.attempts == 2
    clock.advance(0.019)
    assert endpoint.attempts == 2
    clock.advance(0.001)
    assert endpoint.attempts == 3


def test_a_refused_login_counts_as_a_failed_attempt(clock, endpoint):
    make_upstream(clock, endpoint)
    for attempt in range(3):
        peer = endpoint.connections[-1]
        peer.send("ERROR", {"message": "bad login"})
        assert peer.transport.disconnecting
        peer.drop()
        clock.advance(0.01 * 2**attempt)
    # Three refusals: the waits grew, it did not reconnect at once each time.
    assert endpoint.attempts == 4


def test_subscriptions_are_made_again_on_a_new_connection(clock, endpoint):
    upstream = make_upstream(clock, endpoint)
    got = []
    subscription_id, ready = upstream.subscribe("/queue/ext.a", {"ack": "client-individual"}, lambda *a: got.append(a))
    peer = endpoint.connections[0]
    peer.accept()
    subscribes = [frame for frame in peer.frames() if frame.command == "SUBSCRIBE"]
    assert [(f.headers["destination"], f.headers["id"], f.headers["ack"]) for f in subscribes] == [
        ("/queue/ext.a", subscription_id, "client-individual")
    ]
    # In force once the upstream says so.
    assert not ready.called
    peer.send("RECEIPT", {"receipt-id": subscribes[0].headers["receipt"]})
    assert ready.called
    peer.drop()
    clock.advance(0.01)
    again = endpoint.connections[1]
    again.accept()
    (subscribe,) = [frame for frame in again.frames() if frame.command == "SUBSCRIBE"]
    assert subscribe.headers["destination"] == "/queue/ext.a"
    assert "receipt" not in subscribe.headers
    again.send("MESSAGE", {"subscription": subscription_id, "message-id": "m1", "ack": "a1", "destination": "/queue/ext.a"}, b"hi")
    assert got[0][1] == b"hi"


def test_settling_a_delivery_of_an_earlier_connection_sends_nothing(clock, endpoint):
    upstream = make_upstream(clock, endpoint)
    got = []
    subscription_id, _ = upstream.subscribe("/queue/ext.a", {"ack": "client-individual"}, lambda *a: got.append(a))
    peer = endpoint.connections[0]
    peer.accept()
    peer.send("MESSAGE", {"subscription": subscription_id, "message-id": "m1", "ack": "a1", "destination": "/queue/ext.a"}, b"")
    old_delivery = got[0][2]
    peer.drop()
    clock.advance(0.01)
    again = endpoint.connections[1]
    again.accept()
    again.frames()
    assert upstream.settle(old_delivery, ack=True) is False
    assert [frame.command for frame in again.frames()] == []
    again.send("MESSAGE", {"subscription": subscription_id, "message-id": "m1", "ack": "a2", "destination": "/queue/ext.a"}, b"")
    assert upstream.settle(got[1][2], ack=False, requeue=False) is True
    (nack,) = again.frames()
    assert (nack.command, nack.headers) == ("NACK", {"id": "a2", "requeue": "false"})


def test_silent_upstream_is_cut_off_after_its_heart_beat_interval(clock, endpoint):
    make_upstream(clock, endpoint, heart_beat=(1000, 1000))
    peer = endpoint.connections[0]
    peer.accept(heart_beat="1000,1000")
    clock.advance(1.0)
    assert peer.transport.value().endswith(b"\n")
    clock.advance(1.1)
    assert peer.transport.disconnected or peer.transport.disconnecting


def test_a_subscription_the_upstream_does_not_confirm_in_time_is_an_error(clock, endpoint):
    endpoint.refusing = True
    upstream = make_upstream(clock, endpoint, send_timeout=2.0)
    _, ready = upstream.subscribe("/queue/ext.a", {"ack": "auto"}, lambda *a: None)
    failures = []
    ready.addErrback(failures.append)
    clock.advance(2.0)
    assert failures[0].value.message == "connector up: upstream did not confirm"
    # Made on the next connection all the same, its late receipt ignored.
    endpoint.refusing = False
    clock.advance(30.0)
    peer = endpoint.connections[0]
    peer.accept()
    (subscribe,) = [frame for frame in peer.frames() if frame.command == "SUBSCRIBE"]
    assert "receipt" not in subscribe.headers
