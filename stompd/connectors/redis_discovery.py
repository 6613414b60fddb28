"""
The Redis discovery agent: C{redis://HOST:PORT/DB?prefix=PREFIX}, for
networks without multicast (clouds). A broker advertises its URI as a key
C{PREFIX + URI} that expires L{ADVERT_TTL} seconds after it was last
renewed; agents list the keys under C{PREFIX} every L{POLL_INTERVAL}
seconds, so a broker that stops renewing is lost within that time.
"""

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit, urlunsplit

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.logger import Logger
from zope.interface import implementer

from stompd.connectors.timers import Repeating
from stompd.errors import ConfigError, StompError
from stompd.interfaces import IDiscoveryAgent
from stompd.storage.redis import RedisClient

DEFAULT_PREFIX = "stompd:discovery:"
ADVERT_TTL = 10.0
RENEW_INTERVAL = 3.0
POLL_INTERVAL = 1.0
# Seconds any one Redis call may take.
TIMEOUT = 5.0


@dataclass(frozen=True)
class RedisDiscoverySettings:
    """
    @ivar url: the Redis server, C{redis://[:password@]host:port/db}.
    @ivar prefix: starts every advertisement key.
    """

    url: str = ""
    prefix: str = DEFAULT_PREFIX


def parse_config(table: dict) -> RedisDiscoverySettings:
    uri = table.get("uri", "")
    parts = urlsplit(uri)
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(query) - {"prefix"}
    if unknown:
        raise ConfigError(f"uri: unknown option {sorted(unknown)[0]!r} in {uri!r}; known: prefix")
    prefix = query.get("prefix", [DEFAULT_PREFIX])[0]
    if not prefix:
        raise ConfigError(f"uri: prefix must not be empty in {uri!r}")
    url = urlunsplit((parts.scheme, parts.netloc, parts.path or "/0", "", ""))
    try:
        RedisClient(None, url)
    except ValueError as e:
        raise ConfigError(f"uri: {e}") from None
    return RedisDiscoverySettings(url, prefix)


@implementer(IDiscoveryAgent)
class RedisDiscovery:
    """
    Advertises and finds brokers through keys with a time to live.
    """

    log = Logger()

    def __init__(self, settings: RedisDiscoverySettings, reactor) -> None:
        self.settings = settings
        self._reactor = reactor
        self._client = RedisClient(reactor, settings.url, TIMEOUT)
        self._found = self._lost = None
        self._advert: tuple[str, str] | None = None
        self._known: set[str] = set()
        self._repeating = Repeating(reactor, self.log, "Redis discovery")
        self._warned = False

    def watch(self, found, lost):
        self._found, self._lost = found, lost

    def advertise(self, uri, name):
        self._advert = (uri, name)

    def start(self):
        self._client.start()
        if self._advert is not None:
            self._repeating.every(RENEW_INTERVAL, self._renew)
        if self._found is not None:
            self._repeating.every(POLL_INTERVAL, self._poll)
        return succeed(None)

    def _key(self, uri: str) -> bytes:
        return (self.settings.prefix + uri).encode()

    def _unreachable(self, failure) -> None:
        failure.trap(StompError)
        if not self._warned:
            self._warned = True
            self.log.warn("Redis discovery at {url}: {problem}", url=self.settings.url, problem=failure.value.detail)

    def _renew(self):
        uri, name = self._advert
        renewing = self._client.call("set", self._key(uri), name.encode(), None, int(ADVERT_TTL * 1000))
        return renewing.addCallbacks(self._reached, self._unreachable)

    def _reached(self, _) -> None:
        self._warned = False

    async def _listed(self) -> set[str]:
        prefix = self.settings.prefix.encode()
        cursor, seen = 0, set()
        while True:
            cursor, keys = await self._client.call("scan", cursor, prefix + b"*", 1000)
            seen.update(key[len(prefix) :].decode("utf-8", "replace") for key in keys)
            cursor = int(cursor)
            if cursor == 0:
                return seen

    def _poll(self):
        return Deferred.fromCoroutine(self._listed()).addCallbacks(self._update, self._unreachable)

    def _update(self, listed: set[str]) -> None:
        self._warned = False
        if self._advert is not None:
            listed.discard(self._advert[0])
        for uri in sorted(listed - self._known):
            self._found(uri)
        for uri in sorted(self._known - listed):
            self._lost(uri)
        self._known = listed

    def stop(self):
        self._repeating.stop()
        withdrawn = succeed(None)
        if self._advert is not None:
            withdrawn = self._client.call("delete", self._key(self._advert[0])).addErrback(lambda _: None)
        return DeferredList([withdrawn], consumeErrors=True).addBoth(lambda _: self._client.stop())


def create_agent(config, reactor, settings: RedisDiscoverySettings) -> RedisDiscovery:
    """
    The C{stompd.discovery} entry point C{redis}.
    """
    return RedisDiscovery(settings, reactor)


create_agent.parse_config = parse_config
