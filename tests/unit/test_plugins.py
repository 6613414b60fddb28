"""
Finding plugins through entry points.
"""

import pytest
from zope.interface import Interface

from stompd import plugins
from stompd.config import Config
from stompd.errors import ConfigError
from stompd.interfaces import IAuthenticator, IMessageStore
from stompd.storage.memory import MemoryStore


class INothing(Interface):
    def impossible():
        """
        Nothing provides this.
        """


def test_builtins_load():
    assert isinstance(plugins.create(plugins.STORAGE, "memory", IMessageStore, Config(), None, {}), MemoryStore)
    assert IAuthenticator.providedBy(plugins.create(plugins.AUTH, "users", IAuthenticator, Config(), None, {}))


def test_missing_plugin_lists_installed():
    with pytest.raises(ConfigError, match="no stompd.storage plugin named 'nosuch'; installed: .*memory"):
        plugins.create(plugins.STORAGE, "nosuch", IMessageStore, Config(), None, {})


def test_wrong_interface_names_plugin_and_distribution():
    with pytest.raises(ConfigError, match=r"stompd.storage plugin 'memory' \(.* from stompd .*\) does not provide INothing"):
        plugins.create(plugins.STORAGE, "memory", INothing, Config(), None, {})


def test_a_plugin_parses_its_own_table_and_errors_name_the_key_path():
    with pytest.raises(ConfigError, match=r"^storage.memory.size: unknown key"):
        plugins.create(plugins.STORAGE, "memory", IMessageStore, Config(), None, {"size": 3}, "storage.memory")


def test_a_table_for_no_installed_plugin_is_an_error():
    with pytest.raises(ConfigError, match=r"^storage.rediss: no stompd.storage plugin named 'rediss'"):
        plugins.check_tables(plugins.STORAGE, {"rediss": {}}, "storage")
    plugins.check_tables(plugins.STORAGE, {"memory": {}}, "storage")
