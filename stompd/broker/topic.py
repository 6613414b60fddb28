"""
Topic fan-out: every current subscriber of a matching name gets each message.
"""

from twisted.internet.defer import succeed

from stompd.broker.destination import compile_pattern, is_pattern

# Client-acknowledged topic deliveries are remembered only so that their ACK
# is recognised; a subscriber that never acknowledges must not grow memory.
TOPIC_UNACKED_LIMIT = 10_000

# Names seen by publishers, cached with the patterns matching them; cleared
# when it grows past this, so that a publisher inventing names cannot grow it.
_MATCH_CACHE_LIMIT = 10_000


class TopicExchange:
    """
    The topics of one virtual host: exact-name subscriptions in a dict, and
    wildcard subscriptions matched against each new name once.
    """

    def __init__(self) -> None:
        self._exact: dict[str, list] = {}
        self._patterns: list = []
        self._matches: dict[str, list] = {}

    def add(self, subscription) -> None:
        name = subscription.route.key
        if is_pattern(name):
            self._patterns.append((compile_pattern(name), subscription))
            self._matches.clear()
        else:
            self._exact.setdefault(name, []).append(subscription)
        subscription.source = self

    def remove(self, subscription):
        """
        Take a subscriber off; its unacknowledged topic messages are dropped.
        """
        name = subscription.route.key
        subscribers = self._exact.get(name)
        if subscribers is not None and subscription in subscribers:
            subscribers.remove(subscription)
            if not subscribers:
                del self._exact[name]
        else:
            self._patterns = [entry for entry in self._patterns if entry[1] is not subscription]
            self._matches.clear()
        subscription.unacked.clear()
        return succeed(None)

    def _pattern_subscribers(self, name: str) -> list:
        matched = self._matches.get(name)
        if matched is None:
            if len(self._matches) >= _MATCH_CACHE_LIMIT:
                self._matches.clear()
            matched = self._matches[name] = [sub for pattern, sub in self._patterns if pattern.match(name)]
        return matched

    def publish(self, name: str, message) -> int:
        """
        Hand C{message} to every subscriber of topic C{name}, in subscription
        order.

        @return: how many subscribers it went to.
        """
        exact = self._exact.get(name, ())
        patterned = self._pattern_subscribers(name) if self._patterns else ()
        # Copy: a delivery may close a slow subscriber, which unsubscribes.
        subscribers = [*exact, *patterned]
        for subscription in subscribers:
            if subscription.acks:
                unacked = subscription.unacked
                unacked[message.id] = message
                if len(unacked) > TOPIC_UNACKED_LIMIT:
                    unacked.popitem(last=False)
            subscription.target.deliver(subscription, message)
        return len(subscribers)

    def wake(self) -> None:
        """
        A subscriber can take messages again: topics never wait for one, so
        there is nothing to send.
        """

    def settle(self, subscription, messages, action: str, visible_at=None):
        """
        An ACK or NACK of topic messages: nothing is stored, and a NACKed
        topic message is dropped, so there is nothing to do.
        """
        return succeed(None)
