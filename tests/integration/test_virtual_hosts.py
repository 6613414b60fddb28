"""
Virtual hosts: a CONNECT's host header selects a configured virtual host,
whose destinations are its own; any other host is the default one.
"""

import time

import pytest


@pytest.fixture
def tenant_broker(start_broker):
    return start_broker('virtual-hosts = ["/", "tenant-a"]\n')


def quiet_for(collector, seconds: float = 0.5) -> bool:
    """
    Nothing arrives for a while: what a test of isolation can observe.
    """
    time.sleep(seconds)
    return not collector.messages


def test_destinations_are_per_virtual_host(tenant_broker, connect, subscribe, unique):
    topic, queue = unique("/topic/news."), unique("/queue/jobs.")
    tenant = connect(port=tenant_broker.port, vhost="tenant-a")
    other_tenant = connect(port=tenant_broker.port, vhost="tenant-a")
    default = connect(port=tenant_broker.port, vhost="localhost")
    for conn in (tenant, default):
        subscribe(conn, topic, id="t")
        subscribe(conn, queue, id="q")

    other_tenant.send(topic, "for tenant-a")
    other_tenant.send(queue, "job for tenant-a")
    assert tenant.collector.wait_for(lambda: len(tenant.collector.messages) == 2)
    assert sorted(m.body for m in tenant.collector.messages) == ["for tenant-a", "job for tenant-a"]
    assert quiet_for(default.collector)

    default.send(queue, "job for the default host")
    assert default.collector.wait_for(lambda: len(default.collector.messages) == 1)
    assert default.collector.messages[0].body == "job for the default host"
    assert len(tenant.collector.messages) == 2


def test_unknown_host_is_the_default_virtual_host(tenant_broker, connect, subscribe, unique):
    queue = unique("/queue/jobs.")
    spring_like = connect(port=tenant_broker.port, vhost="127.0.0.1")
    unnamed = connect(port=tenant_broker.port, vhost="whatever.example")
    subscribe(spring_like, queue)
    unnamed.send(queue, "same host")
    assert spring_like.collector.wait_for(lambda: len(spring_like.collector.messages) == 1)
