"""
The multicast discovery agent without a network: ActiveMQ's advert format,
its URI, and finding, losing and expiring brokers on a Clock.
"""

import pytest
from twisted.internet.task import Clock

from stompd.connectors.multicast import MulticastDiscovery, advert, parse_config, read_advert
from stompd.errors import ConfigError
from stompd.testing.discovery_contract import Watcher


def test_adverts_are_activemqs():
    assert advert("default", True, "node-a", "tcp://10.0.0.1:61613") == (
        b"default.ActiveMQ-4.alive.%node-a%tcp://10.0.0.1:61613"
    )
    assert advert("prod", False, "n", "tcp://h:1") == b"prod.ActiveMQ-4.dead.%n%tcp://h:1"
    # As an ActiveMQ broker sends them.
    assert read_advert("default", b"default.ActiveMQ-4.alive.%localhost%tcp://192.168.1.5:61616") == (
        True,
        "localhost",
        "tcp://192.168.1.5:61616",
    )


@pytest.mark.parametrize(
    "data", [b"other.ActiveMQ-4.alive.%n%tcp://h:1", b"default.ActiveMQ-4.alive.%n", b"\xff\xfe", b"x" * 5000]
)
def test_other_datagrams_are_ignored(data):
    assert read_advert("default", data) is None


def test_multicast_uris():
    assert parse_config({"uri": "multicast://default"}) == parse_config({"uri": "multicast://239.255.2.3:6155?group=default"})
    settings = parse_config({"uri": "multicast://239.1.2.3:7000?group=prod"})
    assert (settings.address, settings.port, settings.group) == ("239.1.2.3", 7000, "prod")
    for bad, problem in [
        ("multicast://10.0.0.1:6155", "not an IPv4 multicast address"),
        ("multicast://default?ttl=3", "unknown option 'ttl'"),
        ("udp://239.1.2.3:1", "expected multicast://"),
    ]:
        with pytest.raises(ConfigError, match=problem):
            parse_config({"uri": bad})


def test_brokers_are_found_lost_on_dead_and_expire_after_ten_missed_adverts():
    clock = Clock()
    agent = MulticastDiscovery(parse_config({"uri": "multicast://default"}), clock)
    watcher = Watcher()
    agent.watch(watcher.found, watcher.lost)
    agent.advertise("tcp://10.0.0.9:61613", "me")
    agent.received(advert("default", True, "me", "tcp://10.0.0.9:61613"))
    agent.received(advert("default", True, "a", "tcp://10.0.0.1:61613"))
    agent.received(advert("default", True, "a", "tcp://10.0.0.1:61613"))
    agent.received(advert("default", True, "b", "tcp://10.0.0.2:61613"))
    assert watcher.present == {"tcp://10.0.0.1:61613", "tcp://10.0.0.2:61613"}
    agent.received(advert("default", False, "b", "tcp://10.0.0.2:61613"))
    assert watcher.present == {"tcp://10.0.0.1:61613"}
    clock.advance(4.9)
    agent._expire()
    assert watcher.present == {"tcp://10.0.0.1:61613"}
    clock.advance(0.2)
    agent._expire()
    assert watcher.present == set()
