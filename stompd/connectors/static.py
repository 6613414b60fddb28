"""
The static discovery agent: C{static:(URI,URI,...)}, a fixed list of
upstream brokers, as in ActiveMQ's static transport.
"""

from dataclasses import dataclass

from twisted.internet.defer import succeed
from zope.interface import implementer

from stompd.connectors.settings import endpoint_description
from stompd.errors import ConfigError
from stompd.interfaces import IDiscoveryAgent


@dataclass(frozen=True)
class StaticSettings:
    """
    @ivar uri: C{static:(URI,URI,...)} (or C{static:URI}).
    @ivar uris: the upstream URIs it lists.
    """

    uri: str = ""
    uris: tuple[str, ...] = ()


def parse_config(table: dict) -> StaticSettings:
    try:
        return _parse(table.get("uri", ""))
    except ValueError as e:
        raise ConfigError(f"uri: {e}") from None


def _parse(uri: str) -> StaticSettings:
    listed = uri[len("static:") :] if uri.startswith("static:") else ""
    if listed.startswith("(") and listed.endswith(")"):
        listed = listed[1:-1]
    uris = tuple(part.strip() for part in listed.split(",") if part.strip())
    if not uris:
        raise ValueError(f"expected static:(URI,URI,...), got {uri!r}")
    for each in uris:
        endpoint_description(each)
    if len(set(uris)) != len(uris):
        raise ValueError(f"{uri!r} lists an upstream twice")
    return StaticSettings(uri, uris)


@implementer(IDiscoveryAgent)
class StaticDiscovery:
    """
    Finds its listed upstreams at once, and never loses one.
    """

    def __init__(self, settings: StaticSettings) -> None:
        self.uris = settings.uris
        self._found = None

    def watch(self, found, lost):
        self._found = found

    def advertise(self, uri, name):
        raise ConfigError("static: discovery cannot advertise: list this broker in the others' static:(...)")

    def start(self):
        if self._found is not None:
            for uri in self.uris:
                self._found(uri)
        return succeed(None)

    def stop(self):
        return succeed(None)


def create_agent(config, reactor, settings: StaticSettings) -> StaticDiscovery:
    """
    The C{stompd.discovery} entry point C{static}.
    """
    return StaticDiscovery(settings)


create_agent.parse_config = parse_config
