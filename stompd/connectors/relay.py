"""
The relay connector: the destinations it owns live on one upstream broker,
and local clients use them through this broker (as Spring's broker relay
does): SENDs are forwarded, SUBSCRIBEs become upstream subscriptions, and
ACKs and NACKs go upstream.
"""

from dataclasses import dataclass

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.python.failure import Failure
from zope.interface import implementer

from stompd.config import parse_table
from stompd.connectors.client import Upstream, backoff
from stompd.connectors.settings import UpstreamSettings, client_endpoint, endpoint_description
from stompd.interfaces import IConnector

# Reconnecting, as ActiveMQ's failover and fanout transports do by default.
INITIAL_RECONNECT_DELAY = 0.01
MAX_RECONNECT_DELAY = 30.0

# Headers of a local frame that are between the client and this broker.
_LOCAL_HEADERS = frozenset(("receipt", "transaction", "content-length", "id", "ack", "destination"))

# SUBSCRIBE headers that make a topic subscription the subscriber's own
# upstream (durable, filtered or otherwise particular), not one shared by
# every local subscriber of the topic.
_OWN_SUBSCRIPTION_HEADERS = frozenset(
    ("durable", "auto-delete", "exclusive", "selector", "activemq.subscriptionName", "x-queue-name", "persistent")
)


@dataclass(frozen=True)
class RelaySettings(UpstreamSettings):
    def __post_init__(self) -> None:
        super().__post_init__()
        try:
            endpoint_description(self.uri)
        except ValueError as e:
            raise ValueError(f"uri: {e}") from None


class _SharedTopic:
    """
    One upstream subscription to a topic, feeding every local subscriber
    of exactly that destination.
    """

    __slots__ = ("subscription_id", "sources", "_waiters")

    def __init__(self) -> None:
        self.subscription_id = ""
        self.sources: list = []
        # Subscribers waiting for the upstream's confirmation; None once
        # it came (or failed: the subscription is made again on reconnect).
        self._waiters: list | None = []

    def subscribed(self, outcome) -> None:
        waiters, self._waiters = self._waiters, None
        for waiter in waiters:
            if isinstance(outcome, Failure):
                waiter.errback(outcome)
            else:
                waiter.callback(None)

    def in_force(self) -> Deferred:
        """
        A Deferred firing once the upstream confirmed the subscription.
        """
        if self._waiters is None:
            return succeed(None)
        waiter = Deferred()
        self._waiters.append(waiter)
        return waiter

    def deliver(self, headers, body, upstream_id) -> None:
        # A copy: a delivery may close a slow subscriber, which unsubscribes.
        for source in list(self.sources):
            source.deliver(headers, body, None)


@implementer(IConnector)
class RelayConnector:
    """
    Relays its prefixes' destinations to one upstream broker.
    """

    relays_subscriptions = True

    def __init__(self, settings: RelaySettings, reactor) -> None:
        self.settings = settings
        self.name = settings.name
        self.prefixes = settings.prefixes
        self._reactor = reactor
        self._endpoint = client_endpoint(reactor, settings.uri)
        # SENDs and subscriptions without acknowledgements share one
        # connection.
        self.upstream = self._new_upstream()
        self._topics: dict[str, _SharedTopic] = {}
        # remote source -> (its own Upstream, its subscription id there)
        self._own: dict = {}

    def _new_upstream(self, noisy: bool = True) -> Upstream:
        return Upstream(
            self.name,
            self._endpoint,
            self.settings,
            self._reactor,
            backoff(INITIAL_RECONNECT_DELAY, MAX_RECONNECT_DELAY),
            noisy=noisy,
            label=self.settings.uri,
        )

    def start(self, broker):
        self.upstream.start()
        return succeed(None)

    def upstreams_connected(self):
        return 1 if self.upstream.connected is not None else 0

    def backlog(self):
        return self.upstream.backlog + sum(upstream.backlog for upstream, _ in self._own.values() if upstream is not self.upstream)

    def stop(self):
        own = [upstream for upstream, _ in self._own.values()]
        self._own.clear()
        return DeferredList([upstream.stop() for upstream in (self.upstream, *own)], consumeErrors=True)

    def send(self, vhost, headers, body, producer):
        forwarded = {name: value for name, value in headers.items() if name not in _LOCAL_HEADERS}
        forwarded = {"destination": headers["destination"], **forwarded}
        return self.upstream.send(forwarded, body, confirm="receipt" in headers)

    def subscribe(self, subscription):
        destination = subscription.destination
        if (
            not subscription.acks
            and destination.startswith("/topic/")
            and _OWN_SUBSCRIPTION_HEADERS.isdisjoint(subscription.headers)
        ):
            shared = self._topics.get(destination)
            if shared is None:
                shared = self._topics[destination] = _SharedTopic()
                shared.subscription_id, ready = self.upstream.subscribe(destination, {"ack": "auto"}, shared.deliver)
                ready.addBoth(shared.subscribed)
            shared.sources.append(subscription)
            return shared.in_force()
        headers = {name: value for name, value in subscription.headers.items() if name not in _LOCAL_HEADERS}
        if not subscription.acks:
            headers["ack"] = "auto"
            subscription_id, ready = self.upstream.subscribe(destination, headers, subscription.deliver)
            self._own[subscription] = (self.upstream, subscription_id)
            return ready
        headers["ack"] = "client-individual"
        if subscription.prefetch and "prefetch-count" not in headers and "activemq.prefetchSize" not in headers:
            # The upstream holds back what the client may not hold yet:
            # RabbitMQ's and ActiveMQ's names.
            headers["prefetch-count"] = headers["activemq.prefetchSize"] = str(subscription.prefetch)
        # A connection of its own: closing it is the one way every broker
        # (RabbitMQ included) gives back what the subscriber held, when it
        # goes.
        own = self._new_upstream(noisy=False)
        own.start()
        subscription_id, ready = own.subscribe(destination, headers, subscription.deliver)
        self._own[subscription] = (own, subscription_id)
        return ready

    def unsubscribe(self, subscription):
        own = self._own.pop(subscription, None)
        if own is not None:
            upstream, subscription_id = own
            if upstream is self.upstream:
                upstream.unsubscribe(subscription_id)
                return succeed(None)
            return upstream.stop()
        shared = self._topics.get(subscription.destination)
        if shared is not None and subscription in shared.sources:
            shared.sources.remove(subscription)
            if not shared.sources:
                del self._topics[subscription.destination]
                self.upstream.unsubscribe(shared.subscription_id)
        return succeed(None)

    def settle(self, subscription, upstream_ids, action):
        own = self._own.get(subscription)
        if own is not None:
            for upstream_id in upstream_ids:
                if upstream_id is not None:
                    own[0].settle(upstream_id, ack=action == "ack", requeue=action != "reject")
        return succeed(None)


def create_connector(config, reactor, settings: RelaySettings) -> RelayConnector:
    """
    The C{stompd.connectors} entry point C{relay}.
    """
    return RelayConnector(settings, reactor)


create_connector.parse_config = lambda table: parse_table(RelaySettings, table)
