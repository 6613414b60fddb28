"""
A virtual host: its own topics and queues, on a store shared by all.
"""

import re

from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.logger import Logger

from stompd.broker.destination import QUEUE, REMOTE, TOPIC, Route, channel_queue_matcher, route
from stompd.broker.headers import number_header
from stompd.broker.immediate import as_deferred, pending, together
from stompd.broker.message import FRAME_ONLY_HEADERS, MAX_PRIORITY, Message
from stompd.broker.admission import LimitLog
from stompd.broker.policy import DeadLetterQueue, DeliveryPolicy
from stompd.broker.queue import Overflow, Queue
from stompd.broker.remote import ConnectorRoutes, RemoteSource
from stompd.broker.topic import TopicExchange, TopicIndex
from stompd.errors import ProtocolError, StompError

# The most routes a virtual host keeps, by destination, before it forgets
# them all: clients can invent destination names.
ROUTE_CACHE_LIMIT = 4096

# Headers asking for delayed delivery, in milliseconds: ours, ActiveMQ's and
# RabbitMQ's delayed-message plugin's.
DELAY_HEADERS = ("delay", "AMQ_SCHEDULED_DELAY", "x-delay")
# SEND headers that put a message in time: delays and expiry.
_TIMED_HEADERS = frozenset(("expires", "expiration", "ttl", *DELAY_HEADERS))
# Every SEND header that asks for more than a plain message.
_WORK_QUEUE_HEADERS = frozenset(("priority", "channel", *_TIMED_HEADERS))
_PRIORITIES = {str(priority): priority for priority in range(MAX_PRIORITY + 1)}


class VirtualHost:
    """
    Routes messages of one virtual host. Sessions call it; it calls the
    sessions' delivery targets and the store.
    """

    log = Logger()

    def __init__(
        self,
        name: str,
        store,
        clock,
        message_ids,
        queue_config,
        gate,
        connectors: ConnectorRoutes | None = None,
        limit_log=None,
    ) -> None:
        """
        @param limit_log: where hits of C{[queues] max-depth} are logged
            and counted (a L{stompd.broker.admission.LimitLog}).
        """
        self._limit_log = limit_log or LimitLog(clock)
        self._channel_queue = channel_queue_matcher(queue_config.channel_queues) if queue_config.channel_queues else None
        self.name = name
        self.topics = TopicExchange()
        self.queues: dict[str, Queue] = {}
        self._store = store
        self._clock = clock
        self._message_ids = message_ids
        self._queue_config = queue_config
        self._gate = gate
        self._connectors = connectors or ConnectorRoutes()
        # Looked at on every SEND: a plain bool, not the routes' __bool__.
        self._has_connectors = bool(self._connectors)
        self._auto_delete = re.compile(queue_config.auto_delete)
        # store names of queues in this virtual host, by store name prefix,
        # so that a virtual host's queues never mix with another's.
        self._prefix = "" if name == "/" else f"vhost:{name}:"
        # session id -> store names of its temporary queues
        self._temp_queues: dict[str, set[str]] = {}
        # durable subscription queues, by the topic pattern bound to each
        self._durable = TopicIndex()
        self._bindings: dict[str, str] = {}
        # Routes that do not depend on the sender (queues and topics), by
        # destination, and by destination for bare queue names (OCI):
        # parsing a destination is on every SEND's path.
        self._routes: dict[str, Route] = {}
        self._bare_routes: dict[str, Route] = {}

    def __repr__(self) -> str:
        return f"<VirtualHost {self.name!r}>"

    def route(self, destination: str, session_id: str, bare_queues: bool = False) -> Route:
        """
        Where C{destination}, sent by C{session_id}, leads; see
        L{stompd.broker.destination.route}. A destination of a queue listed
        in C{[queues] channel-queues} names a channel of it; one owned by a
        connector that relays subscriptions is L{REMOTE}, whatever its form
        (RabbitMQ's C{/exchange/...} included).

        @raise stompd.errors.DestinationError: for a name not routed here.
        """
        if self._has_connectors:
            connector = self._connectors.owner(destination)
            if connector is not None and connector.relays_subscriptions:
                return Route(REMOTE, destination, connector=connector)
        routes = self._bare_routes if bare_queues else self._routes
        found = routes.get(destination)
        if found is not None:
            return found
        found = route(destination, session_id, bare_queues)
        if found.kind == QUEUE:
            if self._channel_queue is not None and found.owner is None and found.channel is None:
                split = self._channel_queue(found.key)
                if split is not None:
                    found.name, found.channel = split
                    found.key = found.name
            found.key = self._prefix + found.key
        if found.owner is None:
            # A temporary queue's route depends on who sends.
            if len(routes) >= ROUTE_CACHE_LIMIT:
                routes.clear()
            routes[destination] = found
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
                overflow=self._overflow(found),
            )
        return queue

    def _overflow(self, found: Route) -> Overflow | None:
        """
        The depth limit of the queue C{found} leads to, if configured.
        """
        config = self._queue_config
        if not config.max_depth:
            return None
        policy = DeliveryPolicy()
        if config.overflow == "dead-letter":
            # The queue's dead-letter queue, as its subscribers' is.
            dead_letter = self.delivery_policy(found, {}).dead_letter
            policy = DeliveryPolicy(dead_letter=dead_letter)
        return Overflow(config.max_depth, config.overflow, policy, self._limit_log)

    def publish(
        self,
        session_id: str,
        headers: dict[str, str],
        body: bytes,
        bare_queues: bool = False,
        on_full=None,
        origin: str | None = None,
    ) -> Deferred | None:
        """
        Route a SEND frame's message; one to a destination a connector owns
        goes to that connector, unless it came from there (C{origin}, a
        connector's name).

        @param on_full: called with a Deferred that fires once the queue has
            room again, if the message filled a queue to its high-water
            mark: the publisher should stop until then.
        @return: C{None} if the message is stored (queues) or handed to
            every subscriber (topics) already, and its queue is below its
            high-water mark; else a Deferred that fires once that is so.
        @raise stompd.errors.StompError: for a bad destination or header.
        """
        destination = headers["destination"]
        connector = self._connector_for(destination, origin)
        if connector is not None:
            return connector.send(self.name, headers, body, session_id)
        found = self.route(destination, session_id, bare_queues)
        message = self._message(headers, body, found)
        if found.kind == TOPIC:
            return self._publish_topic(found, message, on_full)
        return self._put(found, [message], on_full)

    def publish_many(
        self, session_id: str, sends: list[tuple[dict[str, str], bytes]], bare_queues: bool = False, on_full=None
    ) -> Deferred | None:
        """
        Route the messages of several SEND frames to one destination, given
        as C{(headers, body)} in the order they came, as L{publish} would
        one by one; a queue's are stored in one store call.

        @return: as L{publish}, for them all.
        @raise stompd.errors.StompError: for a bad destination or header,
            once the messages before the bad one are published.
        """
        destination = sends[0][0]["destination"]
        connector = self._connector_for(destination, None)
        if connector is not None:
            return self._each(sends, lambda headers, body: connector.send(self.name, headers, body, session_id))
        found = self.route(destination, session_id, bare_queues)
        if found.kind == TOPIC:
            return self._each(
                sends, lambda headers, body: self._publish_topic(found, self._message(headers, body, found), on_full)
            )
        messages = []
        try:
            for headers, body in sends:
                messages.append(self._message(headers, body, found))
        except StompError:
            if messages:
                self._published_before_error(self._put(found, messages, on_full))
            raise
        return self._put(found, messages, on_full)

    def _connector_for(self, destination: str, origin: str | None):
        """
        The connector a SEND to C{destination} goes to, if one owns it and
        the message did not come from there (C{origin}, a connector's name).
        """
        if not self._has_connectors:
            return None
        connector = self._connectors.owner(destination)
        if connector is None or connector.name == origin:
            return None
        return connector

    def _publish_topic(self, found: Route, message: Message, on_full) -> Deferred | None:
        room = self.topics.publish(found.key, message)
        if room is not None and on_full is not None:
            # A subscriber fell far behind: the publisher waits for it, as
            # for a full queue.
            on_full(room)
        # Other nodes sharing the store deliver it to their subscribers; a
        # store of one node has nobody to hand it to.
        shared = self._store.publish(self.name, found.key, message) if self._store.shared else None
        durable = self._durable.matching(found.key) if self._durable else None
        if not durable:
            return None if shared is None else pending(shared)
        return Deferred.fromCoroutine(self._keep_for_durable(shared, durable, message, on_full))

    def _put(self, found: Route, messages: list[Message], on_full) -> Deferred | None:
        if found.owner is not None and found.key not in self.queues and not self._store.shared:
            # A reply to a session that has gone: nobody can ever read it.
            # (With a shared store the session may be on another node.)
            self.log.debug("Dropped reply to {destination}: no such queue", destination=messages[0].destination)
            return None
        return self._queue(found, by_subscribe=False).put(messages, on_full)

    def _each(self, sends: list, publish_one) -> Deferred | None:
        """
        C{publish_one(headers, body)} for each of C{sends}, in order, as
        one outcome.
        """
        outcomes = []
        try:
            for headers, body in sends:
                outcomes.append(publish_one(headers, body))
        except StompError:
            self._published_before_error(together(outcomes))
            raise
        return together(outcomes)

    def _published_before_error(self, outcome: Deferred | None) -> None:
        # The client is told of the error, not of these: a failure to store
        # them is logged.
        if outcome is not None:
            outcome.addErrback(lambda failure: self.log.failure("Storing SENDs before a bad one", failure))

    async def _keep_for_durable(self, shared: Deferred | None, keys: list[str], message: Message, on_full) -> None:
        """
        Store a copy of a topic message in each durable subscription's
        queue that matches it (only the publishing node does), once other
        nodes have it (C{shared}, if the store is shared).
        """
        if shared is not None:
            await shared
        for key in keys:
            await as_deferred(self._queue(Route(QUEUE, key), by_subscribe=False).put([message.copy()], on_full))

    def durable_route(self, topic: Route, name: str) -> Route:
        """
        The queue of the durable subscription C{name} to C{topic}. Its name
        is the topic's, so it has no default dead-letter queue.
        """
        return Route(QUEUE, self.durable_key(name), name=topic.name)

    def durable_key(self, name: str) -> str:
        """
        The store name of durable subscription C{name}'s queue.
        """
        return f"{self._prefix}durable:{name}"

    def bound(self, key: str, pattern: str | None) -> None:
        """
        Durable subscription queue C{key} now receives the messages of
        topics matching C{pattern} (C{None}: none any more), as this node
        or another decided.
        """
        old = self._bindings.pop(key, None)
        if old is not None:
            self._durable.remove(old, key)
        if pattern is not None:
            self._bindings[key] = pattern
            self._durable.add(pattern, key)

    def forget_durable(self, key: str) -> Deferred:
        """
        Remove a durable subscription for good: its binding and its queue.
        """
        self.bound(key, None)
        unbound = self._store.unbind(self.name, key)
        return unbound.addCallback(lambda _: self.delete_queue(key))

    def check_publish(self, session_id: str, headers: dict[str, str], bare_queues: bool = False) -> None:
        """
        Raise what L{publish} would raise for these SEND headers, without
        publishing: for a SEND kept until its transaction commits.

        @raise stompd.errors.StompError: for a bad destination or header.
        """
        destination = headers["destination"]
        if self._has_connectors and self._connectors.owner(destination) is not None:
            # Its connector, or the broker behind it, judges it.
            return
        self._message(headers, b"", self.route(destination, session_id, bare_queues))

    def _message(self, headers: dict[str, str], body: bytes, found: Route) -> Message:
        """
        The message a SEND's headers describe, with its expiry, delay,
        priority and channel.

        @raise ProtocolError: for a malformed header.
        """
        message = Message(
            self._message_ids.next(),
            headers["destination"],
            {name: value for name, value in headers.items() if name not in FRAME_ONLY_HEADERS},
            body,
        )
        # Most SENDs carry none of these: one test keeps them cheap.
        if found.channel is not None or self._queue_config.default_ttl or not _WORK_QUEUE_HEADERS.isdisjoint(headers):
            self._apply_work_queue_headers(message, headers, found)
        return message

    def _apply_work_queue_headers(self, message: Message, headers: dict[str, str], found: Route) -> None:
        if "priority" in headers:
            priority = _PRIORITIES.get(headers["priority"])
            if priority is None:
                raise ProtocolError("invalid priority header", f"priority must be 0-9, not {headers['priority']!r}.")
            message.priority = priority
        default_ttl = self._queue_config.default_ttl
        if default_ttl or not _TIMED_HEADERS.isdisjoint(headers):
            now = self._clock.seconds()
            for name in DELAY_HEADERS:
                if name in headers:
                    delay = number_header(headers, name, "milliseconds")
                    if delay:
                        message.visible_at = now + delay / 1000.0
                    break
            message.expires_at = self._expiry(headers, now)
        channel = headers.get("channel", found.channel)
        if channel is not None:
            message.channel = channel
            # Sent as /queue/NAME/CHANNEL: consumers of /queue/NAME see which.
            message.headers.setdefault("channel", channel)

    def _expiry(self, headers: dict[str, str], now: float) -> float | None:
        """
        The expiry time a SEND asks for: C{expires} (ActiveMQ: milliseconds
        since the epoch, 0 for never), else C{expiration} (RabbitMQ) or
        C{ttl} (milliseconds to live), else C{[queues] default-ttl}.
        """
        expires = number_header(headers, "expires", "milliseconds since the epoch")
        if expires is not None:
            return expires / 1000.0 if expires > 0 else None
        ttl = number_header(headers, "expiration", "milliseconds")
        if ttl is None:
            ttl = number_header(headers, "ttl", "milliseconds")
        if ttl is not None:
            return now + ttl / 1000.0
        default = self._queue_config.default_ttl
        return now + default if default else None

    def delivery_policy(self, found: Route, headers: dict[str, str]) -> DeliveryPolicy:
        """
        The delivery rules a SUBSCRIBE to queue C{found} asks for with its
        headers (C{visibility}, C{max-deliveries} or
        C{activemq.maximumRedeliveries}, C{dead-letter-queue}, C{channel}),
        the queue configuration giving the defaults.

        @raise stompd.errors.StompError: for a malformed header, or a
            dead-letter queue that is not a queue.
        """
        config = self._queue_config
        visibility = number_header(headers, "visibility", "seconds", decimal=True)
        if visibility is None:
            visibility = config.visibility_timeout
        max_deliveries = number_header(headers, "max-deliveries", "deliveries")
        if max_deliveries is None:
            redeliveries = number_header(headers, "activemq.maximumRedeliveries", "redeliveries")
            # ActiveMQ counts redeliveries: the first delivery is not one.
            max_deliveries = config.max_deliveries if redeliveries is None else redeliveries + 1
        dead_letter = headers.get("dead-letter-queue")
        if dead_letter is None and config.dead_letter_queue and found.owner is None and found.name.startswith("/queue/"):
            # Temporary queues are private and go with their session, and a
            # durable topic subscription's queue is named by its topic:
            # their dead letters are dropped unless the subscriber names a
            # queue.
            dead_letter = config.dead_letter_queue.format(name=found.name)
        target = None
        if dead_letter:
            dead = self.route(dead_letter, "")
            if dead.kind != QUEUE or dead.owner is not None:
                raise ProtocolError(
                    "invalid dead-letter-queue header", f"A dead-letter queue must be a /queue/, not {dead_letter!r}."
                )
            target = DeadLetterQueue(dead.key, dead_letter)
        return DeliveryPolicy(
            lease=visibility or None,
            max_deliveries=max_deliveries,
            dead_letter=target,
            dead_letter_expired=config.expired == "dead-letter",
            channel=headers.get("channel", found.channel),
        )

    def subscribe(self, subscription, headers: dict | None = None) -> Deferred:
        """
        Start delivering to C{subscription}, whose route is set. A durable
        subscription reads its own queue, bound to its topic; one to a
        L{REMOTE} destination is its connector's, given the SUBSCRIBE's
        C{headers}.

        @return: a Deferred firing once the subscription is in force on
            every node sharing the store.
        """
        found = subscription.route
        if found.kind == REMOTE:
            source = subscription.source = RemoteSource(found.connector, self.name, subscription, headers or {})
            return found.connector.subscribe(source)
        if subscription.durable is not None:
            key, pattern = subscription.durable.key, found.key
            self.bound(key, pattern)
            binding = self._store.bind(self.name, key, pattern)
            self._queue(subscription.durable, by_subscribe=False).add(subscription)
            return binding
        if found.kind == TOPIC:
            self.topics.add(subscription)
        else:
            self._queue(found, by_subscribe=True).add(subscription)
        return succeed(None)

    def unsubscribe(self, subscription, forget: bool = False) -> Deferred:
        """
        Stop delivering to C{subscription}; what it held unacknowledged goes
        back to its queue for other consumers. A durable subscription stays
        (its messages wait for it) unless C{forget}.
        """
        source = subscription.source
        if source is None:
            return succeed(None)
        subscription.source = None
        released = as_deferred(source.remove(subscription))
        if isinstance(source, Queue) and source.auto_delete and not source.consumers:
            released.addCallback(lambda _: self.delete_queue(source.key))
        if forget and subscription.durable is not None:
            released.addCallback(lambda _: self.forget_durable(subscription.durable.key))
        return released

    def settle(self, subscription, deliveries: list, action: str, visible_at: float | None = None) -> Deferred | None:
        """
        An ACK or NACK of C{deliveries}, already taken off C{subscription}'s
        unacknowledged list; see L{Queue.settle}.

        @return: C{None} if that is done already, else a Deferred firing
            once it is.
        """
        source = subscription.source
        if source is None:
            return None
        return source.settle(subscription, deliveries, action, visible_at)

    def wake(self, subscription) -> None:
        """
        C{subscription}'s connection can take messages again.
        """
        source = subscription.source
        if source is not None:
            source.wake()

    def work_arrived(self, key: str | None) -> None:
        """
        The store made messages of queue C{key} deliverable (a dead letter
        moved in, another node's work; C{None}: any queue may have some):
        dispatch them if the queue has consumers here.
        """
        if key is None:
            for queue in list(self.queues.values()):
                queue.work_arrived()
            return
        queue = self.queues.get(key)
        if queue is None and key.startswith(self._prefix + "/queue/"):
            if self._prefix or not key.startswith("vhost:"):
                # A queue this node had not seen (a dead-letter queue, one
                # another node fills): known from now on, for the API.
                queue = self._queue(Route(QUEUE, key, name=key[len(self._prefix) :]), by_subscribe=False)
        if queue is not None:
            queue.work_arrived()

    def topic_arrived(self, topic: str, message) -> None:
        """
        Another node published C{message} to C{topic}: deliver it to the
        subscribers here.
        """
        self.topics.publish(topic, message, here=False)

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
