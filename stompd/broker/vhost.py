"""
A virtual host: its own topics and queues, on a store shared by all.
"""

import re

from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.logger import Logger

from stompd.broker.destination import QUEUE, TOPIC, Route, route
from stompd.broker.message import FRAME_ONLY_HEADERS, Message
from stompd.broker.queue import Queue
from stompd.broker.topic import TopicExchange
from stompd.errors import ProtocolError


class VirtualHost:
    """
    Routes messages of one virtual host. Sessions call it; it calls the
    sessions' delivery targets and the store.
    """

    log = Logger()

    def __init__(self, name: str, store, clock, message_ids, queue_config, gate) -> None:
        self.name = name
        self.topics = TopicExchange()
        self.queues: dict[str, Queue] = {}
        self._store = store
        self._clock = clock
        self._message_ids = message_ids
        self._queue_config = queue_config
        self._gate = gate
        self._auto_delete = re.compile(queue_config.auto_delete)
        # store names of queues in this virtual host, by store name prefix,
        # so that a virtual host's queues never mix with another's.
        self._prefix = "" if name == "/" else f"vhost:{name}:"
        # session id -> store names of its temporary queues
        self._temp_queues: dict[str, set[str]] = {}

    def __repr__(self) -> str:
        return f"<VirtualHost {self.name!r}>"

    def route(self, destination: str, session_id: str) -> Route:
        """
        Where C{destination}, sent by C{session_id}, leads.

        @raise stompd.errors.DestinationError: for a name not routed here.
        """
        found = route(destination, session_id)
        if found.kind == QUEUE:
            found.key = self._prefix + found.key
        return found

    def _queue(self, found: Route, by_subscribe: bool) -> Queue:
        queue = self.queues.get(found.key)
        if queue is None:
            if found.owner is not None:
                self._temp_queues.setdefault(found.owner, set()).add(found.key)
            auto_delete = by_subscribe and found.owner is None and self._auto_delete.search(found.key) is not None
            queue = self.queues[found.key] = Queue(
                found.key,
                self._store,
                self._clock,
                self._queue_config.high_water_mark,
                self._gate,
                auto_delete=auto_delete,
            )
        return queue

    def publish(self, session_id: str, headers: dict[str, str], body: bytes) -> Deferred:
        """
        Route a SEND frame's message.

        @return: a Deferred that fires when the message is stored (queues) or
            handed to every subscriber (topics), and, for a queue above its
            high-water mark, only once the queue has room again.
        @raise stompd.errors.StompError: for a bad destination or header.
        """
        destination = headers["destination"]
        found = self.route(destination, session_id)
        message = Message(
            self._message_ids.next(),
            destination,
            {name: value for name, value in headers.items() if name not in FRAME_ONLY_HEADERS},
            body,
            expires_at=self._expiry(headers),
        )
        if found.kind == TOPIC:
            self.topics.publish(found.key, message)
            return succeed(None)
        if found.owner is not None and found.key not in self.queues:
            # A reply to a session that has gone: nobody can ever read it.
            self.log.debug("Dropped reply to {destination}: no such queue", destination=destination)
            return succeed(None)
        return Deferred.fromCoroutine(self._queue(found, by_subscribe=False).put(message))

    def check_publish(self, session_id: str, headers: dict[str, str]) -> None:
        """
        Raise what L{publish} would raise for these SEND headers, without
        publishing: for a SEND kept until its transaction commits.

        @raise stompd.errors.StompError: for a bad destination or header.
        """
        self.route(headers["destination"], session_id)
        self._expiry(headers)

    def _expiry(self, headers: dict[str, str]) -> float | None:
        """
        The expiry time a SEND asks for: C{expires} (ActiveMQ: milliseconds
        since the epoch, 0 for never) or C{expiration} (RabbitMQ:
        milliseconds to live).
        """
        try:
            if "expires" in headers:
                expires = int(headers["expires"])
                return expires / 1000.0 if expires > 0 else None
            if "expiration" in headers:
                ttl = int(headers["expiration"])
                if ttl < 0:
                    raise ValueError(ttl)
                return self._clock.seconds() + ttl / 1000.0
        except ValueError:
            raise ProtocolError(
                "invalid expiry header",
                "The expires header must be milliseconds since the epoch and "
                "the expiration header milliseconds to live, both whole numbers.",
            ) from None
        return None

    def subscribe(self, subscription) -> None:
        """
        Start delivering to C{subscription}, whose route is set.
        """
        found = subscription.route
        if found.kind == TOPIC:
            self.topics.add(subscription)
        else:
            self._queue(found, by_subscribe=True).add(subscription)

    def unsubscribe(self, subscription) -> Deferred:
        """
        Stop delivering to C{subscription}; what it held unacknowledged goes
        back to its queue for other consumers.
        """
        source = subscription.source
        if source is None:
            return succeed(None)
        subscription.source = None
        released = source.remove(subscription)
        if isinstance(source, Queue) and source.auto_delete and not source.consumers:
            released.addCallback(lambda _: self.delete_queue(source.key))
        return released

    def settle(self, subscription, messages: list, requeue: bool) -> Deferred:
        """
        An ACK (C{requeue} false) or NACK (true) of C{messages}, already taken
        off C{subscription}'s unacknowledged list.
        """
        source = subscription.source
        if source is None:
            return succeed(None)
        return source.settle(subscription, messages, requeue)

    def wake(self, subscription) -> None:
        """
        C{subscription}'s connection can take messages again.
        """
        source = subscription.source
        if source is not None:
            source.wake()

    def delete_queue(self, key: str) -> Deferred:
        """
        Drop a queue and its messages.
        """
        queue = self.queues.pop(key, None)
        if queue is not None:
            queue.close()
        return self._store.delete(key)

    def end_session(self, session_id: str) -> Deferred:
        """
        A session is gone: delete its temporary queues.
        """
        doomed = self._temp_queues.pop(session_id, ())
        return gatherResults([self.delete_queue(key) for key in doomed], consumeErrors=True)
