"""
Connection limits on the in-memory harness: refused with an ERROR before
CONNECT, counted per address, rate-limited on a Clock, logged once per
interval.
"""

from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.internet.testing import StringTransport

from stompd.broker import admission
from stompd.config import parse_config
from stompd.testing.harness import FakeClient, make_broker


def broker_with(limits: str):
    return make_broker(parse_config(f"[limits]\n{limits}\n[auth]\nguest-loopback-only = false\n"))


def open_from(broker, host: str = "10.0.0.1") -> FakeClient:
    peer = UNIXAddress("/run/stompd.sock") if host == "unix" else IPv4Address("TCP", host, 5000)
    return FakeClient(broker, transport=StringTransport(peerAddress=peer))


def refused_with(client) -> str | None:
    frames = client.frames()
    return frames[0].headers["message"] if frames and frames[0].command == "ERROR" else None


def test_max_connections_refuses_the_one_over_before_connect_and_counts_closed_ones_out():
    broker = broker_with("max-connections = 2")
    # Two open, so that the third is one too many.
    first, _second = open_from(broker, "10.0.0.1"), open_from(broker, "10.0.0.2")
    third = open_from(broker, "10.0.0.3")
    assert refused_with(third) == "too many connections"
    assert third.closed
    assert refused_with(first) is None and not first.closed
    first.connect()
    first.disconnect()
    third.disconnect()
    assert refused_with(open_from(broker, "10.0.0.4")) is None


def test_max_connections_per_address():
    broker = broker_with("max-connections-per-address = 2")
    clients = [open_from(broker, "10.0.0.1") for _ in range(3)]
    assert [refused_with(client) for client in clients] == [None, None, "too many connections from your address"]
    assert refused_with(open_from(broker, "10.0.0.2")) is None
    assert refused_with(open_from(broker, "unix")) is None
    clients[0].disconnect()
    assert refused_with(open_from(broker, "10.0.0.1")) is None


def test_connection_rate_per_address_on_the_clock():
    broker = broker_with("connection-rate = 2.0")
    assert [refused_with(open_from(broker)) for _ in range(3)] == [None, None, "connecting too fast"]
    assert refused_with(open_from(broker, "10.0.0.9")) is None
    broker.clock.advance(1.0)
    assert refused_with(open_from(broker)) is None


def test_limit_hits_are_counted_and_logged_once_per_interval():
    broker = broker_with("max-connections = 1")
    open_from(broker)
    logged = []
    from twisted.logger import globalLogPublisher

    globalLogPublisher.addObserver(logged.append)
    try:
        for _ in range(5):
            open_from(broker)
        broker.clock.advance(admission.LOG_INTERVAL)
        open_from(broker)
    finally:
        globalLogPublisher.removeObserver(logged.append)
    lines = [event for event in logged if event.get("limit") == "max-connections"]
    assert [event["count"] for event in lines] == [1, 5]
    assert broker.admission.log.hits == {"max-connections": 6}
