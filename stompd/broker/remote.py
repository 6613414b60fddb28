"""
The broker's side of connectors: which connector owns a destination, the
facade connectors act through, and the local subscriptions a connector
feeds from upstream.
"""

from twisted.internet.defer import maybeDeferred
from zope.interface import implementer

from stompd.broker.message import Message
from stompd.errors import ConfigError
from stompd.interfaces import IBrokerFacade, IRemoteSubscription

# Headers of an upstream MESSAGE that belong to that delivery, not to the
# message the local subscriber gets.
_UPSTREAM_DELIVERY_HEADERS = frozenset(("subscription", "message-id", "ack", "content-length", "delivery-count"))


class ConnectorRoutes:
    """
    The configured connectors, by the destination prefixes they own. No
    two connectors' prefixes overlap, so at most one owns a destination.
    """

    def __init__(self, connectors=()) -> None:
        self.connectors = tuple(connectors)
        owners = []
        for connector in self.connectors:
            for prefix in connector.prefixes:
                for other, taken in owners:
                    if prefix.startswith(taken) or taken.startswith(prefix):
                        raise ConfigError(
                            f"connectors.{connector.name}.prefixes: {prefix!r} overlaps {taken!r} "
                            f"of connector {other.name!r}"
                        )
                owners.append((connector, prefix))
        # Longest first, though they cannot overlap: the order is the rule.
        self._owners = sorted(owners, key=lambda owner: -len(owner[1]))

    def __bool__(self) -> bool:
        return bool(self._owners)

    def owner(self, destination: str):
        """
        The connector owning C{destination}, or C{None}.
        """
        for connector, prefix in self._owners:
            if destination.startswith(prefix):
                return connector
        return None


@implementer(IBrokerFacade)
class BrokerFacade:
    """
    The broker as connectors see it (L{IBrokerFacade}).
    """

    def __init__(self, broker) -> None:
        self._broker = broker

    @property
    def node_id(self) -> str:
        return self._broker.node_id

    @property
    def clock(self):
        return self._broker.clock

    def publish(self, vhost, headers, body, origin):
        return maybeDeferred(self._broker.virtual_host(vhost).publish, "", headers, body, origin=origin)


@implementer(IRemoteSubscription)
class RemoteSource:
    """
    The source of a local subscription to a destination a connector
    relays: what the connector feeds (L{IRemoteSubscription}), and what
    the virtual host settles and removes the subscription through, as it
    does a queue's or a topic's.
    """

    def __init__(self, connector, vhost: str, subscription, headers: dict) -> None:
        self.connector = connector
        self.vhost = vhost
        self.subscription = subscription
        self.destination = subscription.destination
        self.headers = headers
        self.acks = subscription.acks
        self.prefetch = subscription.prefetch

    def __repr__(self) -> str:
        return f"<RemoteSource {self.destination!r} of {self.connector.name!r}>"

    def deliver(self, headers, body, upstream_id):
        subscription = self.subscription
        if subscription.source is not self:
            # Unsubscribed; the upstream has not heard yet.
            return
        count = headers.get("delivery-count", "")
        kept = {name: value for name, value in headers.items() if name not in _UPSTREAM_DELIVERY_HEADERS}
        if count.isdigit():
            # The delivery count makes the redelivered line, as for local
            # queue messages; without one, the upstream's goes as it is.
            kept.pop("redelivered", None)
        message = Message(
            headers.get("message-id") or str(upstream_id),
            headers.get("destination", self.destination),
            kept,
            body,
            delivery_count=int(count) if count.isdigit() else 0,
        )
        if subscription.read_check is not None and not subscription.read_check(message.destination):
            # Matched by the subscriber's wildcard, but not readable by it.
            if subscription.acks and upstream_id is not None:
                self.connector.settle(self, [upstream_id], "ack")
            return
        if subscription.acks:
            subscription.unacked[subscription.ack_id(message)] = upstream_id
        subscription.target.deliver(subscription, message)

    def remove(self, subscription):
        subscription.unacked.clear()
        return maybeDeferred(self.connector.unsubscribe, self)

    def settle(self, subscription, upstream_ids, action, visible_at=None):
        # A NACK's visibility is the upstream's business: it redelivers.
        return maybeDeferred(self.connector.settle, self, list(upstream_ids), action)

    def wake(self) -> None:
        """
        The client reads again; the upstream's prefetch is its flow control.
        """
