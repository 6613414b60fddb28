"""
Temporary queues for request/reply, as RabbitMQ offers them: a
C{reply-to: /temp-queue/NAME} header is rewritten into a destination other
clients can send to, and only the requesting connection reads it.
"""

import time

import pytest


def request(requester, responder, service: str, body: str, subscribe=None) -> str:
    """
    Send a request with C{reply-to: /temp-queue/replies}, first subscribing
    to that queue with C{subscribe} if given; return the reply-to the
    responder saw.
    """
    if subscribe is not None:
        subscribe(requester, "/temp-queue/replies", id="replies")
    count = len(responder.collector.messages)
    requester.send(service, body, headers={"reply-to": "/temp-queue/replies"})
    assert responder.collector.wait_for(lambda: len(responder.collector.messages) > count)
    return responder.collector.messages[-1].headers["reply-to"]


@pytest.mark.parametrize("subscribe_first", [True, False], ids=["subscribed", "reply-to-only"])
def test_request_reply(connect, subscribe, unique, subscribe_first):
    service = unique("/queue/service.")
    responder = connect()
    subscribe(responder, service)
    requester = connect()
    reply_to = request(requester, responder, service, "what time is it?", subscribe if subscribe_first else None)
    assert reply_to != "/temp-queue/replies"
    assert "/temp-queue/" not in reply_to
    responder.send(reply_to, "noon", headers={"correlation-id": "1"}, receipt="replied")
    responder.collector.wait_for_receipt("replied")
    assert requester.collector.wait_for(lambda: requester.collector.messages)
    (reply,) = requester.collector.messages
    assert reply.body == "noon"
    assert reply.headers["correlation-id"] == "1"
    assert reply.headers["subscription"] == ("replies" if subscribe_first else "/temp-queue/replies")
    # More requests use the same queue.
    assert request(requester, responder, service, "and now?") == reply_to
    responder.send(reply_to, "one past noon")
    assert requester.collector.wait_for(lambda: len(requester.collector.messages) == 2)
    assert requester.collector.bodies() == ["noon", "one past noon"]


def test_temp_queues_are_private_to_their_connection(connect, subscribe, unique):
    service = unique("/queue/service.")
    responder = connect()
    subscribe(responder, service)
    alice, bob = connect(), connect()
    to_alice = request(alice, responder, service, "alice", subscribe)
    to_bob = request(bob, responder, service, "bob", subscribe)
    assert to_alice != to_bob
    responder.send(to_bob, "for bob")
    responder.send(to_alice, "for alice")
    assert alice.collector.wait_for(lambda: alice.collector.messages)
    assert bob.collector.wait_for(lambda: bob.collector.messages)
    time.sleep(0.1)
    assert alice.collector.bodies() == ["for alice"]
    assert bob.collector.bodies() == ["for bob"]


def test_sending_to_own_temp_queue_stays_in_the_connection(connect, subscribe):
    alice, bob = connect(), connect()
    subscribe(alice, "/temp-queue/inbox")
    subscribe(bob, "/temp-queue/inbox")
    alice.send("/temp-queue/inbox", "note to self", receipt="sent")
    alice.collector.wait_for_receipt("sent")
    assert alice.collector.wait_for_bodies(1) == ["note to self"]
    assert alice.collector.messages[0].headers["destination"] == "/temp-queue/inbox"
    assert bob.collector.bodies() == []


def test_another_connection_cannot_read_a_temp_queue(connect, subscribe, unique, raw, expect_error, assert_serving):
    service = unique("/queue/service.")
    responder = connect()
    subscribe(responder, service)
    requester = connect()
    reply_to = request(requester, responder, service, "secret", subscribe)
    thief = raw()
    assert thief.connect().command == "CONNECTED"
    thief.send_frame("SUBSCRIBE", {"id": "steal", "destination": reply_to, "receipt": "stealing"})
    expect_error(thief, "access refused")
    responder.send(reply_to, "for the requester only")
    assert requester.collector.wait_for(lambda: requester.collector.messages)
    assert requester.collector.bodies() == ["for the requester only"]
    assert_serving()


def test_temp_queue_is_deleted_with_its_connection(connect, subscribe, unique, raw, assert_serving, send_all):
    service = unique("/queue/service.")
    responder = connect()
    subscribe(responder, service)
    requester = connect()
    reply_to = request(requester, responder, service, "late", subscribe)
    requester.disconnect()
    time.sleep(0.1)
    # Replying to a connection that has gone is not the responder's error.
    send_all(responder, reply_to, ["nobody reads this"])
    assert not responder.collector.errors
    # A new connection's temp queue of the same name is another queue.
    newcomer = connect()
    subscribe(newcomer, "/temp-queue/replies")
    time.sleep(0.2)
    assert newcomer.collector.bodies() == []
    assert_serving()


def test_reply_to_other_destinations_is_left_alone(connect, subscribe, unique):
    service = unique("/queue/service.")
    responder = connect()
    subscribe(responder, service)
    requester = connect()
    requester.send(service, "x", headers={"reply-to": "/queue/answers"})
    assert responder.collector.wait_for(lambda: responder.collector.messages)
    assert responder.collector.messages[0].headers["reply-to"] == "/queue/answers"
