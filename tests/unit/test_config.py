"""
Configuration parsing and its error messages.
"""

from pathlib import Path

import pytest

from stompd.config import Config, load_config, parse_config
from stompd.errors import ConfigError

EXAMPLE = Path(__file__).parents[2] / "etc" / "stompd.toml"


def test_example_config_is_the_defaults():
    assert load_config(str(EXAMPLE)) == Config()


def test_values_are_read():
    config = parse_config(
        'listen = ["tcp:1", "tcp:2"]\n[limits]\nmax-body-size = 10\n[heart-beat]\ngrace = 2\n'
        '[queues]\ndefault-prefetch = 5\n'
    )
    assert config.listen == ("tcp:1", "tcp:2")
    assert config.limits.max_body_size == 10
    assert config.heart_beat.grace == 2.0
    assert config.queues.default_prefetch == 5


@pytest.mark.parametrize(
    "text, expected",
    [
        ("colour = 1\n", "f.toml: colour: unknown key"),
        ("[limits]\nmax_body_size = 1\n", "f.toml: limits.max_body_size: unknown key"),
        ("[limits]\nmax-body-size = 'big'\n", "f.toml: limits.max-body-size: expected an int, got 'big'"),
        ("listen = 'tcp:1'\n", "f.toml: listen: expected a list of strings, got 'tcp:1'"),
        ("[auth]\nguest = 1\n", "f.toml: auth.guest: expected a bool, got 1"),
        ("limits = 3\n", "f.toml: limits: expected a table, got 3"),
        ("[heart-beat]\ngrace = 0.5\n", "f.toml: heart-beat: grace must be at least 1.0"),
        ("[queues]\nauto-delete = '('\n", "f.toml: queues: auto-delete is not a regular expression"),
        ("virtual-hosts = ['a']\n", "f.toml: top level: virtual-hosts must include the default '/'"),
        ("listen = [\n", "f.toml: not valid TOML"),
        ("[queues]\nexpired = 'keep'\n", "f.toml: queues: expired must be 'dead-letter' or 'drop', not 'keep'"),
        ("[queues]\nvisibility-timeout = -1\n", "f.toml: queues: visibility-timeout, default-ttl and max-deliveries"),
        ("[queues]\ndead-letter-queue = '{queue}.DLQ'\n", "f.toml: queues: dead-letter-queue may use only {name}"),
        ("[queues]\ndead-letter-queue = '/topic/dead'\n", "f.toml: queues: dead-letter-queue must name a /queue/"),
        ("[queues]\nchannel-queues = ['jobs']\n", "f.toml: queues: channel-queues patterns must name queues"),
        ("[websocket]\nheart-beat-grace = 0\n", "f.toml: websocket: heart-beat-grace must be at least 1.0"),
        ("[[listener]]\noci-compat = true\n", "f.toml: listener[0]: endpoint is required"),
        ("[[listener]]\nendpoint = 'tcp:1'\noci = true\n", "f.toml: listener[0].oci: unknown key"),
        ("listener = 'tcp:1'\n", "f.toml: listener: expected an array of tables ([[listener]])"),
        ("[storage]\nsettings = 1\n", "f.toml: storage.settings: unknown key"),
        ("[storage]\nredis = 1\n", "f.toml: storage.redis: unknown key"),
        ("node-id = 'no spaces'\n", "f.toml: top level: node-id may hold only"),
    ],
)
def test_errors_name_file_key_and_problem(text, expected):
    with pytest.raises(ConfigError) as raised:
        parse_config(text, "f.toml")
    assert str(raised.value).startswith(expected)


def test_listeners_with_options():
    config = parse_config(
        'listen = ["tcp:1"]\n[[listener]]\nendpoint = "tcp:2"\noci-compat = true\n[[listener]]\nendpoint = "tcp:3"\n'
    )
    assert config.listen == ("tcp:1",)
    assert [(entry.endpoint, entry.oci_compat) for entry in config.listener] == [("tcp:2", True), ("tcp:3", False)]


def test_missing_file():
    with pytest.raises(ConfigError, match="nope.toml: cannot read configuration"):
        load_config("nope.toml")


def test_plugin_tables_are_kept_for_their_plugins():
    config = parse_config('node-id = "n1"\n[storage]\nbackend = "redis"\n[storage.redis]\nurl = "redis://h:1/0"\n')
    assert config.node_id == "n1"
    assert config.storage.backend == "redis"
    assert config.storage.settings == {"redis": {"url": "redis://h:1/0"}}
