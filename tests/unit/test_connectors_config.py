"""
Connector configuration: C{[[connectors]]} tables, parsed by each
connector type, and the start-up errors that name the connector and the
option.
"""

import pytest
from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from stompd.config import parse_config
from stompd.connectors.settings import endpoint_description
from stompd.errors import ConfigError
from stompd.interfaces import IConnector
from stompd.tap import make_broker

RELAY = """
[[connectors]]
name = "rabbit"
type = "relay"
uri = "tcp://127.0.0.1:61613"
login = "guest"
passcode = "guest"
host = "/"
prefixes = ["/topic/ext.", "/queue/ext."]
heart-beat = [10000, 10000]
"""


def broker_from(text: str):
    return make_broker(parse_config(text, "broker.toml"), Clock())


def error_from(text: str) -> str:
    with pytest.raises(ConfigError) as raised:
        broker_from(text)
    return str(raised.value)


@pytest.mark.parametrize(
    "uri, description",
    [
        ("tcp://127.0.0.1:61613", "tcp:host=127.0.0.1:port=61613"),
        ("stomp://broker.example:61613", "tcp:host=broker.example:port=61613"),
        ("ssl://broker.example:61614", "tls:host=broker.example:port=61614"),
        ("stomp+ssl://broker.example:61614", "tls:host=broker.example:port=61614"),
        ("tcp://[::1]:61613", r"tcp:host=\:\:1:port=61613"),
        ("tcp:host=127.0.0.1:port=61613", "tcp:host=127.0.0.1:port=61613"),
        ("unix:path=/run/broker.sock", "unix:path=/run/broker.sock"),
    ],
)
def test_upstream_uris_become_twisted_endpoints(uri, description):
    assert endpoint_description(uri) == description


@pytest.mark.parametrize("uri", ["http://127.0.0.1:80", "tcp://127.0.0.1", "tcp://:61613", "tcp://h:99999"])
def test_bad_upstream_uris_are_refused(uri):
    with pytest.raises(ValueError):
        endpoint_description(uri)


def test_a_relay_table_makes_a_relay_connector():
    broker = broker_from(RELAY)
    (connector,) = broker.connectors.connectors
    verifyObject(IConnector, connector)
    assert connector.name == "rabbit"
    assert connector.prefixes == ("/topic/ext.", "/queue/ext.")
    assert connector.settings.heart_beat == (10000, 10000)
    assert connector.settings.send_timeout == 30.0
    assert connector.settings.buffer == 0
    assert broker.connectors.owner("/queue/ext.orders") is connector
    assert broker.connectors.owner("/queue/orders") is None


def test_an_unknown_option_names_the_connector_and_the_option():
    assert error_from(RELAY + 'minAckCount = 2\n') == "connectors.rabbit.minAckCount: unknown key"


def test_a_bad_uri_names_the_connector_and_uri():
    problem = error_from(RELAY.replace("tcp://127.0.0.1:61613", "tcp://nowhere"))
    assert problem.startswith("connectors.rabbit.uri: expected tcp://HOST:PORT")


def test_a_bad_value_names_the_connector_and_the_option():
    assert error_from(RELAY.replace("[10000, 10000]", "[1]")).startswith("connectors.rabbit.heart-beat:")
    assert error_from(RELAY + "send-timeout = 0\n").startswith("connectors.rabbit.send-timeout:")
    assert error_from(RELAY + 'buffer = "lots"\n') == "connectors.rabbit.buffer: expected an int, got 'lots'"


def test_prefixes_are_required():
    text = RELAY.replace('prefixes = ["/topic/ext.", "/queue/ext."]\n', "")
    assert error_from(text).startswith("connectors.rabbit.prefixes:")


def test_overlapping_prefixes_are_an_error_naming_prefixes():
    second = RELAY.replace('name = "rabbit"', 'name = "other"').replace(
        '["/topic/ext.", "/queue/ext."]', '["/queue/ext.orders"]'
    )
    problem = error_from(RELAY + second)
    assert problem == "connectors.other.prefixes: '/queue/ext.orders' overlaps '/queue/ext.' of connector 'rabbit'"


def test_an_unknown_type_names_the_connector():
    problem = error_from(RELAY.replace('type = "relay"', 'type = "shovel"'))
    assert problem.startswith("connectors.rabbit.type: no connector type 'shovel'; installed: ")
    assert "relay" in problem


def test_connector_names_are_required_and_unique():
    with pytest.raises(ConfigError, match=r"connectors\[0\]: name is required"):
        parse_config(RELAY.replace('name = "rabbit"\n', ""), "broker.toml")
    with pytest.raises(ConfigError, match="two connectors are named 'rabbit'"):
        parse_config(RELAY + RELAY, "broker.toml")


FANOUT = """
[[connectors]]
name = "broadcast"
type = "fanout"
uri = "fanout://(static:(tcp://127.0.0.1:61614,tcp://127.0.0.1:61615))?minAckCount=2&fanOutQueues=false"
prefixes = ["/topic/", "/queue/"]
"""


def test_a_fanout_table_reads_activemqs_uri_and_defaults():
    (connector,) = broker_from(FANOUT).connectors.connectors
    verifyObject(IConnector, connector)
    options = connector.options
    assert options.discovery == "static:(tcp://127.0.0.1:61614,tcp://127.0.0.1:61615)"
    assert (options.min_ack_count, options.fan_out_queues) == (2, False)
    assert (options.initial_reconnect_delay, options.max_reconnect_delay) == (10, 30000)
    assert (options.use_exponential_back_off, options.back_off_multiplier, options.max_reconnect_attempts) == (True, 2.0, -1)
    assert connector.relays_subscriptions is False


@pytest.mark.parametrize(
    "uri",
    [
        "fanout:(static:(tcp://127.0.0.1:1,tcp://127.0.0.1:2))?reconnectDelayExponent=3&maxReconnectAttempts=5",
        "fanout://static:(tcp://127.0.0.1:1,tcp://127.0.0.1:2)?reconnectDelayExponent=3&maxReconnectAttempts=5",
    ],
)
def test_fanout_uri_forms_and_activemqs_own_option_names(uri):
    (connector,) = broker_from(FANOUT.replace(FANOUT.split('"')[5], uri)).connectors.connectors
    assert connector.options.back_off_multiplier == 3.0
    assert connector.options.max_reconnect_attempts == 5


@pytest.mark.parametrize(
    "query, problem",
    [
        ("minAckCount=lots", "connectors.broadcast.minAckCount: expected an integer, got 'lots'"),
        ("fanOutQueues=yes", "connectors.broadcast.fanOutQueues: expected true or false, got 'yes'"),
        ("noSuchOption=1", "connectors.broadcast.noSuchOption: unknown fanout option"),
        ("minAckCount=3", "connectors.broadcast.minAckCount: 3 is more than the 2 upstreams"),
    ],
)
def test_bad_fanout_options_name_the_connector_and_the_option(query, problem):
    assert error_from(FANOUT.replace("minAckCount=2&fanOutQueues=false", query)).startswith(problem)


def test_bad_discovery_uris_name_the_connector():
    assert error_from(FANOUT.replace("static:(", "static:(http://x:1,")).startswith("connectors.broadcast.uri: ")
    assert error_from(FANOUT.replace("(static:", "(nosuch:")).startswith(
        "connectors.broadcast.uri: no discovery agent for 'nosuch'"
    )
