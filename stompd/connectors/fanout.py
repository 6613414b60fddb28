"""
The fanout connector: ActiveMQ's fanout transport, done in the broker for
any STOMP client. Its destinations are published here as on any broker
and also sent to every upstream broker a discovery agent finds (topics),
or to one of them (queues, unless C{fanOutQueues=true}), with a quorum of
upstream RECEIPTs (C{minAckCount}) before the client's RECEIPT.

Forwarded frames carry an origin, a message id and a hop count, so that
nodes fanning out to each other deliver each message once: a node drops a
message that came back to it or that it has seen, and stops forwarding at
L{MAX_HOPS}.
"""

import dataclasses
import itertools
from collections import OrderedDict, deque
from dataclasses import dataclass
from urllib.parse import parse_qsl

from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.logger import Logger
from zope.interface import implementer

from stompd import plugins
from stompd.config import parse_table
from stompd.connectors.client import Upstream, backoff
from stompd.connectors.settings import UpstreamSettings, client_endpoint
from stompd.connectors.static import StaticDiscovery
from stompd.errors import ConfigError, StompError
from stompd.interfaces import IConnector, IDiscoveryAgent

ORIGIN_HEADER = "stompd-origin"
MESSAGE_ID_HEADER = "stompd-message-id"
HOPS_HEADER = "stompd-hops"
# Enough for any federation drawn by hand; a loop the ids miss dies here.
MAX_HOPS = 8
# Message ids remembered to drop duplicates.
SEEN_LIMIT = 100_000
# Producers remembered with the upstream their queue messages go to.
PRODUCER_LIMIT = 10_000

# Headers of a local frame that are between the client and this broker.
_LOCAL_HEADERS = frozenset(("receipt", "transaction", "content-length"))
_FANOUT_HEADERS = (ORIGIN_HEADER, MESSAGE_ID_HEADER, HOPS_HEADER)


def _boolean(value: str) -> bool:
    if value not in ("true", "false"):
        raise ValueError(f"expected true or false, got {value!r}")
    return value == "true"


def _integer(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"expected an integer, got {value!r}") from None


def _number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"expected a number, got {value!r}") from None


# ActiveMQ's fanout options: (attribute, parser, default).
FANOUT_OPTIONS = {
    "initialReconnectDelay": ("initial_reconnect_delay", _integer, 10),
    "maxReconnectDelay": ("max_reconnect_delay", _integer, 30000),
    "useExponentialBackOff": ("use_exponential_back_off", _boolean, True),
    "backOffMultiplier": ("back_off_multiplier", _number, 2.0),
    # The name ActiveMQ's code really reads for the multiplier.
    "reconnectDelayExponent": ("back_off_multiplier", _number, 2.0),
    "maxReconnectAttempts": ("max_reconnect_attempts", _integer, -1),
    "fanOutQueues": ("fan_out_queues", _boolean, False),
    "minAckCount": ("min_ack_count", _integer, 2),
}


@dataclass(frozen=True)
class FanoutOptions:
    """
    What a fanout URI says, with ActiveMQ's defaults (delays in ms).
    """

    discovery: str = ""
    initial_reconnect_delay: int = 10
    max_reconnect_delay: int = 30000
    use_exponential_back_off: bool = True
    back_off_multiplier: float = 2.0
    max_reconnect_attempts: int = -1
    fan_out_queues: bool = False
    min_ack_count: int = 2


def parse_fanout_uri(uri: str) -> FanoutOptions:
    """
    Read C{fanout://(DISCOVERY)?OPTIONS} (or C{fanout:(...)}, or without
    the parentheses).

    @raise ConfigError: naming the option at fault, or C{uri}.
    """
    if not uri.startswith("fanout:"):
        raise ConfigError(f"uri: expected fanout://(DISCOVERY_URI)?OPTIONS, got {uri!r}")
    rest = uri[len("fanout:") :].removeprefix("//")
    if rest.startswith("("):
        depth = 0
        for end, char in enumerate(rest):
            depth += {"(": 1, ")": -1}.get(char, 0)
            if depth == 0:
                break
        if depth:
            raise ConfigError(f"uri: unbalanced parentheses in {uri!r}")
        discovery, query = rest[1:end], rest[end + 1 :]
    else:
        discovery, _, query = rest.partition("?")
        query = "?" + query if query else ""
    if query and not query.startswith("?"):
        raise ConfigError(f"uri: expected ?OPTIONS after the discovery URI in {uri!r}")
    if not discovery:
        raise ConfigError(f"uri: no discovery URI in {uri!r}")
    values = {}
    for name, value in parse_qsl(query[1:], keep_blank_values=True, strict_parsing=bool(query[1:])):
        option = FANOUT_OPTIONS.get(name)
        if option is None:
            raise ConfigError(f"{name}: unknown fanout option; known: {', '.join(FANOUT_OPTIONS)}")
        attribute, parser, _ = option
        try:
            values[attribute] = parser(value)
        except ValueError as e:
            raise ConfigError(f"{name}: {e}") from None
    options = FanoutOptions(discovery, **values)
    if options.min_ack_count < 1:
        raise ConfigError(f"minAckCount: must be at least 1, got {options.min_ack_count}")
    if options.initial_reconnect_delay < 0 or options.max_reconnect_delay < options.initial_reconnect_delay:
        raise ConfigError("maxReconnectDelay: must be at least initialReconnectDelay, and neither negative")
    if options.back_off_multiplier < 1:
        raise ConfigError(f"backOffMultiplier: must be at least 1, got {options.back_off_multiplier}")
    return options


@dataclass(frozen=True)
class FanoutSettings(UpstreamSettings):
    """
    L{UpstreamSettings} with L{options} read from the fanout C{uri}.
    """

    options: FanoutOptions | None = None


def parse_config(table: dict) -> FanoutSettings:
    settings = parse_table(UpstreamSettings, table)
    return FanoutSettings(**dataclasses.asdict(settings), options=parse_fanout_uri(settings.uri))


class _Quorum:
    """
    Fires once C{need} of C{sends} succeeded; fails once so many failed
    that C{need} cannot be reached.
    """

    def __init__(self, name: str, sends: list[Deferred], need: int) -> None:
        self.done = Deferred()
        self._name = name
        self._need = need
        self._left = len(sends)
        self._confirmed = 0
        self._problem = ""
        for sending in sends:
            sending.addCallbacks(self._confirm, self._refuse)

    def _confirm(self, _) -> None:
        self._left -= 1
        self._confirmed += 1
        if self._confirmed == self._need and not self.done.called:
            self.done.callback(None)

    def _refuse(self, failure) -> None:
        self._left -= 1
        self._problem = failure.value.detail if failure.check(StompError) else failure.getErrorMessage()
        if self._confirmed + self._left < self._need and not self.done.called:
            self.done.errback(
                StompError(
                    f"connector {self._name}: too few upstreams confirmed",
                    f"Connector {self._name!r} needs {self._need} upstream RECEIPTs (minAckCount). {self._problem}",
                )
            )


@implementer(IConnector)
class FanoutConnector:
    """
    Fans its prefixes' messages out to the upstreams its discovery agent
    finds; subscriptions to them stay local.
    """

    log = Logger()
    relays_subscriptions = False

    def __init__(self, settings: FanoutSettings, reactor, agent, endpoint_for=None) -> None:
        """
        @param agent: the L{IDiscoveryAgent} finding its upstreams.
        @param endpoint_for: makes the client endpoint of an upstream URI
            (L{client_endpoint} by default).
        """
        self.settings = settings
        self._endpoint_for = endpoint_for or (lambda uri: client_endpoint(reactor, uri))
        self.name = settings.name
        self.prefixes = settings.prefixes
        self.options = settings.options
        self._reactor = reactor
        self._agent = agent
        # Each upstream refuses at once while down: the connector waits, as
        # a whole, for minAckCount of them (buffer).
        self._upstream_settings = dataclasses.replace(settings, buffer=0)
        self.upstreams: dict[str, Upstream] = {}
        self._broker = None
        self._node = ""
        self._ids = itertools.count(1)
        self._seen: OrderedDict = OrderedDict()
        self._producers: OrderedDict = OrderedDict()
        self._waiting: deque = deque()

    # Upstreams, as discovered

    def start(self, broker):
        self._broker = broker
        self._node = broker.node_id
        self._agent.watch(self._found, self._lost)
        return self._agent.start()

    def stop(self):
        self._fail_waiting("The broker is stopping.")
        upstreams = list(self.upstreams.values())
        self.upstreams.clear()
        stopping = [self._agent.stop(), *(upstream.stop() for upstream in upstreams)]
        return DeferredList(stopping, consumeErrors=True)

    def _found(self, uri: str) -> None:
        if uri in self.upstreams:
            return
        try:
            endpoint = self._endpoint_for(uri)
        except ConfigError as e:
            self.log.warn("{name}: ignoring upstream {uri}: {problem}", name=self.name, uri=uri, problem=str(e))
            return
        options = self.options
        upstream = Upstream(
            self.name,
            endpoint,
            self._upstream_settings,
            self._reactor,
            backoff(
                options.initial_reconnect_delay / 1000.0,
                options.max_reconnect_delay / 1000.0,
                options.back_off_multiplier,
                options.use_exponential_back_off,
            ),
            on_change=self._changed,
            max_attempts=options.max_reconnect_attempts,
            label=uri,
        )
        self.upstreams[uri] = upstream
        self.log.info("{name}: upstream {uri} found", name=self.name, uri=uri)
        upstream.start()

    def _lost(self, uri: str) -> None:
        upstream = self.upstreams.pop(uri, None)
        if upstream is not None:
            self.log.info("{name}: upstream {uri} gone", name=self.name, uri=uri)
            upstream.stop()

    def upstreams_connected(self):
        return len(self.connected())

    def backlog(self):
        return len(self._waiting) + sum(upstream.backlog for upstream in self.upstreams.values())

    def connected(self) -> list[Upstream]:
        """
        The upstreams connected now, in the order they were found.
        """
        return [upstream for upstream in self.upstreams.values() if upstream.connected is not None]

    def _changed(self, upstream: Upstream) -> None:
        if upstream.failed:
            self.upstreams.pop(upstream.label, None)
        while self._waiting and len(self.connected()) >= self.options.min_ack_count:
            arguments, waiter, timer = self._waiting.popleft()
            timer.cancel()
            self._forward(*arguments).chainDeferred(waiter)

    # Messages

    def send(self, vhost, headers, body, producer):
        origin = headers.get(ORIGIN_HEADER)
        if origin is not None:
            return self._from_peer(vhost, headers, body, origin)
        message_id = f"{self._node}:{next(self._ids)}"
        self._remember(message_id)
        forwarded = {name: value for name, value in headers.items() if name not in _LOCAL_HEADERS}
        forwarded.update({ORIGIN_HEADER: self._node, MESSAGE_ID_HEADER: message_id, HOPS_HEADER: "1"})
        arguments = (vhost, forwarded, body, producer, "receipt" in headers)
        if len(self.connected()) >= self.options.min_ack_count:
            return self._forward(*arguments)
        if len(self._waiting) >= self.settings.buffer:
            return fail(self._too_few())
        waiter = Deferred()
        entry = [arguments, waiter, None]
        entry[2] = self._reactor.callLater(self.settings.send_timeout, self._waited_too_long, entry)
        self._waiting.append(entry)
        return waiter

    def _too_few(self) -> StompError:
        return StompError(
            f"connector {self.name}: upstream not connected",
            f"Connector {self.name!r} has {len(self.connected())} upstreams connected and needs "
            f"{self.options.min_ack_count} (minAckCount).",
        )

    def _waited_too_long(self, entry) -> None:
        self._waiting.remove(entry)
        entry[1].errback(self._too_few())

    def _fail_waiting(self, detail: str) -> None:
        waiting, self._waiting = self._waiting, deque()
        for _, waiter, timer in waiting:
            timer.cancel()
            waiter.errback(StompError(f"connector {self.name}: upstream not connected", detail))

    def _forward(self, vhost: str, headers: dict, body: bytes, producer: str, confirm: bool) -> Deferred:
        connected = self.connected()
        everywhere = self.options.fan_out_queues or not headers["destination"].startswith("/queue/")
        targets = connected if everywhere else [self._upstream_for(producer, connected)]
        sends = [upstream.send(dict(headers), body, confirm) for upstream in targets]
        need = min(self.options.min_ack_count, len(targets))
        if not everywhere:
            # A queue message lives on the one upstream it went to.
            return _Quorum(self.name, sends, need).done
        local = self._broker.publish(vhost, _without_fanout_headers(headers), body, origin=self.name)
        return DeferredList([local, _Quorum(self.name, sends, need).done], fireOnOneErrback=True, consumeErrors=True).addCallbacks(
            lambda _: None, lambda failure: failure.value.subFailure
        )

    def _upstream_for(self, producer: str, connected: list[Upstream]) -> Upstream:
        """
        The upstream a producer's queue messages go to: the same one while
        it stays connected (so that they keep their order), else the one
        with the fewest producers.
        """
        chosen = self._producers.get(producer)
        if chosen is None or chosen.connected is None:
            load = {id(upstream): 0 for upstream in connected}
            for assigned in self._producers.values():
                if id(assigned) in load:
                    load[id(assigned)] += 1
            chosen = min(connected, key=lambda upstream: load[id(upstream)])
            self._producers[producer] = chosen
            if len(self._producers) > PRODUCER_LIMIT:
                self._producers.popitem(last=False)
        else:
            self._producers.move_to_end(producer)
        return chosen

    def _from_peer(self, vhost: str, headers: dict, body: bytes, origin: str) -> Deferred:
        """
        A message another node fanned out to this one: delivered here once,
        and passed on (topics) while it has hops left.
        """
        message_id = headers.get(MESSAGE_ID_HEADER, "")
        if origin == self._node or not message_id or not self._remember(message_id):
            return succeed(None)
        local_headers = _without_fanout_headers(headers)
        local = self._broker.publish(vhost, local_headers, body, origin=self.name)
        hops = int(headers[HOPS_HEADER]) if headers.get(HOPS_HEADER, "").isdigit() else MAX_HOPS
        if headers["destination"].startswith("/queue/") or hops >= MAX_HOPS:
            return local
        onward = {name: value for name, value in headers.items() if name not in _LOCAL_HEADERS}
        onward[HOPS_HEADER] = str(hops + 1)
        for upstream in self.connected():
            upstream.send(dict(onward), body, confirm=False).addErrback(lambda _: None)
        return local

    def _remember(self, message_id: str) -> bool:
        """
        Note C{message_id} as seen; C{False} if it was already.
        """
        if message_id in self._seen:
            return False
        self._seen[message_id] = None
        if len(self._seen) > SEEN_LIMIT:
            self._seen.popitem(last=False)
        return True

    # Subscriptions are local (relays_subscriptions is False).

    def subscribe(self, subscription):
        return succeed(None)

    def unsubscribe(self, subscription):
        return succeed(None)

    def settle(self, subscription, upstream_ids, action):
        return succeed(None)


def _without_fanout_headers(headers: dict) -> dict:
    return {name: value for name, value in headers.items() if name not in _FANOUT_HEADERS and name not in _LOCAL_HEADERS}


def create_connector(config, reactor, settings: FanoutSettings) -> FanoutConnector:
    """
    The C{stompd.connectors} entry point C{fanout}.
    """
    discovery = settings.options.discovery
    scheme = discovery.split(":", 1)[0]
    where = f"connectors.{settings.name}"
    if scheme not in plugins.available(plugins.DISCOVERY):
        installed = ", ".join(plugins.available(plugins.DISCOVERY)) or "none"
        raise ConfigError(f"{where}.uri: no discovery agent for {scheme!r} in {discovery!r}; installed: {installed}")
    agent = plugins.create(plugins.DISCOVERY, scheme, IDiscoveryAgent, config, reactor, {"uri": discovery}, where)
    if isinstance(agent, StaticDiscovery) and len(agent.uris) < settings.options.min_ack_count:
        raise ConfigError(
            f"{where}.minAckCount: {settings.options.min_ack_count} is more than the {len(agent.uris)} upstreams "
            f"of {discovery!r}: nothing could ever be forwarded"
        )
    return FanoutConnector(settings, reactor, agent)


create_connector.parse_config = parse_config
