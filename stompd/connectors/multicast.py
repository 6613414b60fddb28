"""
The multicast discovery agent: C{multicast://GROUP_ADDRESS:PORT?group=NAME}
(C{multicast://default} is 239.255.2.3:6155, group C{default}), speaking
ActiveMQ's advert format so that a stompd fanout finds ActiveMQ brokers and
ActiveMQ clients find stompd.

Every L{ADVERT_INTERVAL} seconds a broker sends
C{GROUP.ActiveMQ-4.alive.%NAME%SERVICE_URI} to the group, and
C{GROUP.ActiveMQ-4.dead.%NAME%SERVICE_URI} when it stops; a broker not
heard from for L{MISSED_ADVERTS} intervals is lost.
"""

import ipaddress
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from twisted.internet.defer import maybeDeferred, succeed
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from zope.interface import implementer

from stompd.connectors.timers import Repeating
from stompd.errors import ConfigError
from stompd.interfaces import IDiscoveryAgent

DEFAULT_ADDRESS = "239.255.2.3"
DEFAULT_PORT = 6155
DEFAULT_GROUP = "default"
ADVERT_INTERVAL = 0.5
MISSED_ADVERTS = 10
# ActiveMQ's names: the type suffix, the two states and the delimiter.
_TYPE = "ActiveMQ-4."
_ALIVE = "alive."
_DEAD = "dead."
_DELIMITER = "%"
# Larger datagrams are not adverts.
_MAX_ADVERT = 4096


@dataclass(frozen=True)
class MulticastSettings:
    address: str = DEFAULT_ADDRESS
    port: int = DEFAULT_PORT
    group: str = DEFAULT_GROUP


def parse_config(table: dict) -> MulticastSettings:
    uri = table.get("uri", "")
    parts = urlsplit(uri)
    if parts.scheme != "multicast" or parts.path not in ("", "/"):
        raise ConfigError(f"uri: expected multicast://GROUP_ADDRESS:PORT?group=NAME, got {uri!r}")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(query) - {"group"}
    if unknown:
        raise ConfigError(f"uri: unknown option {sorted(unknown)[0]!r} in {uri!r}; known: group")
    group = query.get("group", [DEFAULT_GROUP])[0]
    if not group or _DELIMITER in group:
        raise ConfigError(f"uri: group must be a name without '%', got {group!r}")
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"uri: invalid port in {uri!r}") from None
    if host == "default":
        host, port = DEFAULT_ADDRESS, port or DEFAULT_PORT
    try:
        if not ipaddress.IPv4Address(host).is_multicast:
            raise ValueError
    except ValueError:
        raise ConfigError(f"uri: {host!r} is not an IPv4 multicast address (224.0.0.0/4) in {uri!r}") from None
    return MulticastSettings(host, port or DEFAULT_PORT, group)


def advert(group: str, alive: bool, name: str, service: str) -> bytes:
    """
    One advert datagram in ActiveMQ's format.
    """
    state = _ALIVE if alive else _DEAD
    return f"{group}.{_TYPE}{state}{_DELIMITER}{name}{_DELIMITER}{service}".encode("utf-8")


def read_advert(group: str, data: bytes) -> tuple[bool, str, str] | None:
    """
    C{(alive, name, service)} from an advert of C{group}, or C{None} for
    anything else.
    """
    if len(data) > _MAX_ADVERT:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    start = f"{group}.{_TYPE}"
    if not text.startswith(start):
        return None
    rest = text[len(start) :]
    for state, alive in ((_ALIVE, True), (_DEAD, False)):
        if rest.startswith(state + _DELIMITER):
            name, delimiter, service = rest[len(state) + 1 :].partition(_DELIMITER)
            if delimiter and service:
                return alive, name, service
    return None


class _Adverts(DatagramProtocol):
    def __init__(self, agent: "MulticastDiscovery") -> None:
        self.agent = agent

    def startProtocol(self) -> None:
        settings = self.agent.settings
        # One hop: adverts stay on the local network, as ActiveMQ's do.
        self.transport.setTTL(1)
        # Brokers on one host hear each other.
        self.transport.setLoopbackMode(1)
        joined = self.transport.joinGroup(settings.address)
        joined.addErrback(
            lambda failure: self.agent.log.error(
                "Cannot join multicast group {address}: {problem}", address=settings.address, problem=failure.getErrorMessage()
            )
        )

    def datagramReceived(self, data: bytes, address) -> None:
        self.agent.received(data)


@implementer(IDiscoveryAgent)
class MulticastDiscovery:
    """
    Advertises and finds brokers on one multicast group.
    """

    log = Logger()

    def __init__(self, settings: MulticastSettings, reactor) -> None:
        self.settings = settings
        self._reactor = reactor
        self._found = self._lost = None
        self._advert: tuple[str, str] | None = None
        # service URI -> when it was last heard from
        self._heard: dict[str, float] = {}
        self._port = None
        self._protocol = None
        self._repeating = Repeating(reactor, self.log, "Multicast discovery")

    def watch(self, found, lost):
        self._found, self._lost = found, lost

    def advertise(self, uri, name):
        if _DELIMITER in name:
            raise ConfigError(f"multicast: a broker name may not hold '%': {name!r}")
        self._advert = (uri, name)

    def start(self):
        self._protocol = _Adverts(self)
        self._port = self._reactor.listenMulticast(self.settings.port, self._protocol, listenMultiple=True)
        if self._advert is not None:
            self._repeating.every(ADVERT_INTERVAL, self._send_alive)
        if self._found is not None:
            self._repeating.every(ADVERT_INTERVAL, self._expire)
        return succeed(None)

    def _send(self, alive: bool) -> None:
        uri, name = self._advert
        try:
            self._port.write(advert(self.settings.group, alive, name, uri), (self.settings.address, self.settings.port))
        except OSError as e:
            # No route for multicast (yet): adverts go once there is one.
            self.log.debug("Multicast advert not sent: {problem}", problem=e)

    def _send_alive(self) -> None:
        self._send(True)

    def received(self, data: bytes) -> None:
        if self._found is None:
            return
        read = read_advert(self.settings.group, data)
        if read is None:
            return
        alive, name, service = read
        if self._advert is not None and service == self._advert[0]:
            return
        if alive:
            if service not in self._heard:
                self.log.info("Multicast discovery: found {name} at {service}", name=name, service=service)
                self._found(service)
            self._heard[service] = self._reactor.seconds()
        elif self._heard.pop(service, None) is not None:
            self._lost(service)

    def _expire(self) -> None:
        limit = self._reactor.seconds() - ADVERT_INTERVAL * MISSED_ADVERTS
        for service, heard in list(self._heard.items()):
            if heard < limit:
                del self._heard[service]
                self._lost(service)

    def stop(self):
        self._repeating.stop()
        if self._port is None:
            return succeed(None)
        if self._advert is not None:
            self._send(False)
        port, self._port = self._port, None
        return maybeDeferred(port.stopListening)


def create_agent(config, reactor, settings: MulticastSettings) -> MulticastDiscovery:
    """
    The C{stompd.discovery} entry point C{multicast}.
    """
    return MulticastDiscovery(settings, reactor)


create_agent.parse_config = parse_config
