"""
The Redis store: queues in Redis, shared by every stompd node that uses the
same Redis and key prefix, so that they act as one broker.

Each change of more than one command is one Lua script
(L{stompd.storage.redis_scripts}). Every call has a timeout; a call that
fails or times out fails with L{StorageError}, which the session turns into
an ERROR frame, and the connection is made again with back-off (by
txredisapi). Topic messages and "this queue has work" notices go to the
other nodes by Redis pub/sub, on a connection of their own.

This is the only module that imports txredisapi. docs/redis.md describes
the key layout.
"""

import os
from collections import deque
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

import msgpack
import txredisapi
from twisted.internet.defer import CancelledError, Deferred, fail, maybeDeferred, succeed
from twisted.internet.defer import TimeoutError as CallTimedOut
from twisted.internet.endpoints import TCP4ClientEndpoint, UNIXClientEndpoint
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from stompd.config import parse_table
from stompd.errors import ConfigError, StorageError
from stompd.interfaces import IMessageStore, ITimedStore
from stompd.storage import redis_scripts as scripts
from stompd.storage.codec import pack_head, pack_message, pack_state, unpack_message, unpack_message_packed


@dataclass(frozen=True)
class RedisSettings:
    """
    The C{[storage.redis]} table.

    @ivar url: C{redis://[:password@]host:port/db} or
        C{unix:///path?db=N[&password=P]}.
    @ivar key_prefix: starts every key and pub/sub channel name; brokers
        with different prefixes share a Redis without seeing each other.
    @ivar sentinels: C{host:port} of Redis Sentinels to ask for the master
        of C{service}, instead of C{url} (whose password and db still
        apply).
    @ivar service: the Sentinel service (master) name.
    @ivar timeout: seconds any one Redis call may take.
    @ivar node_lease: seconds a node's lease in Redis lasts unless renewed;
        when a node's lease lapses, the others give back what it held.
    """

    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "stompd:"
    sentinels: tuple[str, ...] = ()
    service: str = ""
    timeout: float = 5.0
    node_lease: float = 10.0

    def __post_init__(self) -> None:
        try:
            _parse_url(self.url)
        except ValueError as e:
            raise ValueError(f"url: {e}") from None
        if not self.key_prefix:
            raise ValueError("key-prefix: must not be empty")
        if self.timeout <= 0:
            raise ValueError(f"timeout: must be positive, not {self.timeout!r}")
        if self.node_lease < 3 * self.timeout / 5 or self.node_lease <= 0:
            # Renewed every third of it: a renewal must fit in that time.
            raise ValueError(f"node-lease: must be positive and at least 0.6 times timeout, not {self.node_lease!r}")
        for sentinel in self.sentinels:
            host, _, port = sentinel.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"sentinels: expected 'host:port', not {sentinel!r}")
        if self.sentinels and not self.service:
            raise ValueError("service: required with sentinels")

    @property
    def address(self) -> dict:
        """
        Where to connect: C{host}, C{port} or C{path}, C{db}, C{password}.
        """
        return _parse_url(self.url)


def _parse_url(url: str) -> dict:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    if parts.scheme == "redis":
        try:
            port = parts.port or 6379
        except ValueError:
            raise ValueError(f"invalid port in {url!r}") from None
        path = parts.path.strip("/") or "0"
        if not parts.hostname or not path.isdigit() or parts.query:
            raise ValueError(f"expected redis://[:password@]host:port/db, not {url!r}")
        return {"host": parts.hostname, "port": port, "db": int(path), "password": unquote(parts.password or "") or None}
    if parts.scheme == "unix":
        db = query.get("db", ["0"])[0]
        if not parts.path or parts.netloc or not db.isdigit():
            raise ValueError(f"expected unix:///path/to/redis.sock?db=N, not {url!r}")
        return {"path": parts.path, "db": int(db), "password": query.get("password", [None])[0]}
    raise ValueError(f"expected redis://[:password@]host:port/db or unix:///path?db=N, not {url!r}")


def parse_config(table: dict) -> RedisSettings:
    """
    Check and read C{[storage.redis]}.

    @raise ConfigError: naming the key (C{url: ...}).
    """
    return parse_table(RedisSettings, table)


# Give-back calls that failed, kept for when Redis is back.
_MAX_OWED = 100_000

# The IMessageStore operation each script is, for ITimedStore.
_OPERATIONS = {
    scripts.ENQUEUE: "enqueue",
    scripts.RESERVE: "reserve",
    scripts.ACK: "ack",
    scripts.RELEASE: "release",
    scripts.UNRESERVE: "unreserve",
    scripts.DEAD_LETTER: "dead_letter",
    scripts.DEPTH: "depth",
    scripts.PURGE: "purge",
}


def _bytes(value) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, float):
        return repr(value).encode()
    return str(value).encode()


def _pairs(deliveries) -> list[bytes]:
    args = []
    for message_id, count in deliveries:
        args.append(message_id.encode())
        args.append(b"%d" % count)
    return args


def _policy(policy) -> bytes:
    dead = policy.dead_letter
    return msgpack.packb(
        [
            False if policy.lease is None else float(policy.lease),
            policy.max_deliveries,
            False if dead is None else dead.key,
            False if dead is None else dead.destination,
            policy.dead_letter_expired,
            False if policy.channel is None else policy.channel,
        ],
        use_bin_type=False,
    )


class _Batch:
    """
    Calls of one script on one queue joined into one run: their arguments,
    end to end, and (how many arguments, Deferred) of each call.
    """

    __slots__ = ("args", "calls")

    def __init__(self) -> None:
        self.args: list[bytes] = []
        self.calls: list[tuple[int, Deferred]] = []


class _Protocol(txredisapi.RedisProtocol):
    """
    txredisapi's protocol, without Nagle's delay: commands are small and a
    store call waits for each answer.
    """

    def connectionMade(self):
        if hasattr(self.transport, "setTcpNoDelay"):
            # Not on a UNIX socket.
            self.transport.setTcpNoDelay(True)
        return super().connectionMade()

    def tryConvertData(self, data):
        # Replies are used as hiredis gives them (bytes, no number
        # conversion): txredisapi would copy every list of them unchanged.
        if self.charset is None and not self.convertNumbers:
            return data
        return super().tryConvertData(data)

    def _build_command(self, *args, **kwargs):
        """
        The command in Redis's protocol: txredisapi's encoding, a few list
        operations per argument instead of a dozen calls. A script run
        for a burst of SENDs has hundreds of arguments, mostly C{bytes}.
        """
        parts = [b"*%d\r\n" % len(args)]
        append = parts.append
        for arg in args:
            if arg.__class__ is not bytes:
                arg = self._encode_value(arg)
            append(b"$%d\r\n" % len(arg))
            append(arg)
            append(b"\r\n")
        return b"".join(parts)


class _Subscriber(txredisapi.SubscriberProtocol):
    """
    The pub/sub connection: subscribes to the store's channels each time it
    connects, and hands what arrives to the store.
    """

    store = None

    def connectionMade(self):
        ready = super().connectionMade()
        ready.addCallback(lambda _: self.subscribe(self.factory.channels))
        ready.addCallback(lambda _: self.factory.store._subscribed())
        ready.addErrback(lambda failure: self.factory.store.log.failure("Redis subscribe failed", failure))
        return ready

    def messageReceived(self, pattern, channel, message):
        self.factory.store._received(channel, message)


class RedisClient:
    """
    One Redis connection for a part of stompd other than the store (the
    Redis discovery agent), so that txredisapi stays in this module. It
    reconnects by itself; every call ends within C{timeout}.
    """

    def __init__(self, reactor, url: str, timeout: float = 5.0) -> None:
        """
        @raise ValueError: for a URL that is not C{redis://...} or C{unix://...}.
        """
        address = _parse_url(url)
        self._reactor = reactor
        self._timeout = timeout
        self._factory = txredisapi.RedisFactory(
            None,
            address["db"],
            1,
            isLazy=True,
            charset=None,
            password=address["password"],
            replyTimeout=timeout,
            convertNumbers=False,
        )
        self._factory.protocol = _Protocol
        if "path" in address:
            self._endpoint = UNIXClientEndpoint(reactor, address["path"], timeout=timeout)
        else:
            self._endpoint = TCP4ClientEndpoint(reactor, address["host"], address["port"], timeout=timeout)

    def start(self) -> None:
        self._factory.startConnecting(self._endpoint)

    def call(self, method: str, *args) -> Deferred:
        """
        Run one command (a txredisapi method name).

        @return: a Deferred with its reply, failing with L{StorageError}
            when Redis is unreachable or slower than the timeout.
        """
        try:
            called = getattr(self._factory.handler, method)(*args)
        except Exception as e:
            return fail(StorageError("storage unavailable", f"Redis {method} failed: {e}"))
        called.addTimeout(self._timeout, self._reactor)

        def failed(failure):
            if failure.check(txredisapi.ResponseError):
                return failure
            raise StorageError("storage unavailable", f"Redis {method} failed: {failure.getErrorMessage()}")

        return called.addErrback(failed)

    def stop(self) -> Deferred:
        return maybeDeferred(self._factory.disconnect).addErrback(lambda _: None)


@implementer(IMessageStore, ITimedStore)
class RedisStore:
    """
    Queues in Redis; see the module docstring.

    @ivar node: this node's id, in every delivery it holds.
    """

    log = Logger()
    shared = True

    def __init__(self, settings: RedisSettings, node: str, reactor) -> None:
        self.settings = settings
        self.node = node
        self._reactor = reactor
        self._prefix = settings.key_prefix
        self._prefix_bytes = self._prefix.encode()
        self._node_bytes = node.encode()
        self._timeout = settings.timeout
        self._work_channel = self._prefix_bytes + b"work"
        self._topic_channel = self._prefix_bytes + b"topic"
        self._bindings_channel = self._prefix_bytes + b"bindings"
        self._watchers: list = []
        self._topic_watchers: list = []
        self._binding_watchers: list = []
        self._dead_letter_watchers: list = []
        self._redis = None
        self._subscriber_factory = None
        self._sentinel = None
        # (deadline, Deferred) of calls made, oldest first; see _call.
        self._deadlines: deque = deque()
        self._watchdog = None
        self._renewing = None
        self._reaping = None
        self._ever_subscribed = False
        # Fires once the pub/sub connection first subscribed.
        self._listening = Deferred()
        # (script, queue) -> the calls of it joined this turn
        self._batches: dict[tuple[str, str], _Batch] = {}
        self._batch_call = None
        # When the first call of this turn's batches was made.
        self._batch_started = 0.0
        # See time_calls.
        self._observe = None
        # Releases that failed while Redis was away, to be made again.
        self._owed: list[tuple[str, str, list]] = []

    # Connections

    def _factory(self, protocol):
        address = self.settings.address
        factory = txredisapi.RedisFactory(
            None,
            address["db"],
            1,
            isLazy=True,
            charset=None,
            password=address["password"],
            replyTimeout=self._timeout,
            convertNumbers=False,
        )
        factory.protocol = protocol
        return factory

    def _endpoint(self):
        address = self.settings.address
        if "path" in address:
            return UNIXClientEndpoint(self._reactor, address["path"], timeout=self._timeout)
        return TCP4ClientEndpoint(self._reactor, address["host"], address["port"], timeout=self._timeout)

    def _connect(self) -> None:
        self._watchdog = LoopingCall(self._end_late_calls)
        self._watchdog.clock = self._reactor
        self._watchdog.start(self._timeout / 4, now=False)
        if self.settings.sentinels:
            sentinels = [(host, int(port)) for host, _, port in (s.rpartition(":") for s in self.settings.sentinels)]
            address = self.settings.address
            # Sentinels are asked in text, which txredisapi's discovery expects.
            self._sentinel = txredisapi.Sentinel(sentinels, replyTimeout=self._timeout)
            options = {"charset": None, "password": address["password"], "replyTimeout": self._timeout, "convertNumbers": False}
            service = self.settings.service
            self._redis = self._sentinel.master_for(service, _SentinelMainFactory, dbid=address["db"], **options)
            subscriber = self._sentinel.master_for(service, _SentinelSubscriberFactory, dbid=address["db"], **options)
            self._subscriber_factory = subscriber._factory
        else:
            main = self._factory(_Protocol)
            main.startConnecting(self._endpoint())
            self._redis = main.handler
            self._subscriber_factory = self._factory(_Subscriber)
            self._subscriber_factory.startConnecting(self._endpoint())
        self._subscriber_factory.store = self
        self._subscriber_factory.channels = [self._work_channel, self._topic_channel, self._bindings_channel]

    def _call(self, method: str, *args) -> Deferred:
        """
        One Redis command through the shared connection, within the timeout.
        Commands of one node go in the order they are made, on one
        connection, so a SEND stored after another is stored after it.
        """
        try:
            called = getattr(self._redis, method)(*args)
        except Exception as e:
            return fail(StorageError("storage unavailable", f"Redis {method} failed: {e}"))
        # One watchdog for all calls, not a timer each: calls end in the
        # order they are made, so the oldest is at the left.
        deadlines = self._deadlines
        while deadlines and deadlines[0][1].called:
            deadlines.popleft()
        deadlines.append((self._reactor.seconds() + self._timeout, called))
        return called.addErrback(self._failed, method)

    def _end_late_calls(self) -> None:
        now = self._reactor.seconds()
        deadlines = self._deadlines
        while deadlines and (deadlines[0][1].called or deadlines[0][0] <= now):
            _, called = deadlines.popleft()
            if not called.called:
                called.cancel()

    def _failed(self, failure, method: str):
        if failure.check(CallTimedOut, CancelledError, txredisapi.TimeoutError):
            raise StorageError("storage unavailable", f"Redis did not answer {method} within {self._timeout} s.")
        if failure.check(txredisapi.ResponseError):
            # Redis refused the command: a bug here, not an outage.
            return failure
        if failure.check(txredisapi.RedisError, ConnectionError, OSError):
            raise StorageError("storage unavailable", f"Redis {method} failed: {failure.getErrorMessage()}")
        return failure

    def _script(self, source: str, queue: str, *args) -> Deferred:
        """
        Run a script on C{queue}'s keys, after the batched calls made
        before it (so that one node's calls stay in order).
        """
        if self._batches:
            self._send_batches()
        return self._eval(source, queue, args)

    def _eval(self, source: str, queue: str, args, calls: int = 1, started: float | None = None) -> Deferred:
        """
        One run of C{source}, for C{calls} calls of its operation made from
        C{started} on (now, if not given), timed once for them all.
        """
        if started is None:
            started = self._reactor.seconds()
        keys_and_args = (
            b"1", f"{self._prefix}q:{{{queue}}}".encode(), self._prefix_bytes, queue.encode(), self._node_bytes, *args
        )
        running = self._call("execute_command", b"EVALSHA", scripts.sha(source), *keys_and_args)
        running.addErrback(self._unknown_script, source, keys_and_args)
        operation = _OPERATIONS.get(source)
        if operation is not None and self._observe is not None:
            running.addBoth(self._observed, operation, started, calls)
        return running

    def _observed(self, outcome, operation: str, started: float, calls: int):
        self._observe(operation, self._reactor.seconds() - started, calls)
        return outcome

    def _unknown_script(self, failure, source: str, keys_and_args: tuple):
        if failure.check(txredisapi.ResponseError) and str(failure.value).startswith("NOSCRIPT"):
            # Redis restarted (or its scripts were flushed): send it whole,
            # which also makes Redis keep it again.
            return self._call("execute_command", b"EVAL", source.encode(), *keys_and_args)
        return failure

    def _batched(self, source: str, queue: str, args: list) -> Deferred:
        """
        Join calls of C{source} on C{queue} made in one reactor turn (the
        SENDs or ACKs of one read, of many clients) into one script run:
        one Redis round trip instead of one each.
        """
        batch = self._batches.get((source, queue))
        if batch is None:
            batch = self._batches[(source, queue)] = _Batch()
            if self._batch_call is None:
                self._batch_call = self._reactor.callLater(0, self._send_batches)
                self._batch_started = self._reactor.seconds()
        done = Deferred()
        batch.args += args
        batch.calls.append((len(args), done))
        return done

    def _send_batches(self) -> None:
        if self._batch_call is not None and self._batch_call.active():
            self._batch_call.cancel()
        self._batch_call = None
        batches, self._batches = self._batches, {}
        for (source, queue), batch in batches.items():
            running = self._eval(source, queue, batch.args, len(batch.calls), self._batch_started)
            running.addBoth(self._batch_done, source, batch.calls)

    @staticmethod
    def _batch_done(reply, source: str, calls: list) -> None:
        if isinstance(reply, Failure):
            for _, done in calls:
                done.errback(reply)
            return
        if source is scripts.ACK:
            # One flag per delivery: each caller gets the count of its own.
            offset = 0
            for size, done in calls:
                pairs = size // 2
                done.callback(sum(reply[offset : offset + pairs]))
                offset += pairs
        else:
            for _, done in calls:
                done.callback(reply)

    def _announce(self, moved) -> None:
        for queue in moved:
            name = queue.decode()
            for callback in self._watchers:
                callback(name)

    def _report(self, queue: str, report) -> None:
        """
        Tell the watchers what a script's C{finish()} reported: the
        dead-letter queues that got messages, and the messages of C{queue}
        taken out without an acknowledgement.
        """
        moved, dead = report
        self._announce(moved)
        for n in range(0, len(dead), 3):
            target = dead[n + 1].decode() or None
            for callback in self._dead_letter_watchers:
                callback(queue, dead[n].decode(), target, int(dead[n + 2]))

    # Starting and stopping

    async def _start(self) -> None:
        self._connect()
        where = self.settings.url if not self.settings.sentinels else f"Sentinel {self.settings.service}"
        try:
            await self._call("ping")
        except StorageError as e:
            await self._disconnect()
            raise ConfigError(f"storage.redis: cannot reach Redis at {where}: {e.detail}") from None
        try:
            # Nothing another node publishes may be missed once this node
            # serves clients.
            await self._listening.addTimeout(self._timeout, self._reactor)
        except CallTimedOut:
            await self._disconnect()
            raise ConfigError(f"storage.redis: cannot subscribe to Redis at {where} within {self._timeout} s") from None
        await self._take_node_lease()
        lease = self.settings.node_lease
        self._renewing = LoopingCall(lambda: Deferred.fromCoroutine(self._renew()))
        self._renewing.clock = self._reactor
        self._renewing.start(lease / 3, now=False).addErrback(lambda f: self.log.failure("Node lease renewal", f))
        self._reaping = LoopingCall(lambda: Deferred.fromCoroutine(self._reap_gone_nodes()))
        self._reaping.clock = self._reactor
        self._reaping.start(lease / 2, now=True).addErrback(lambda f: self.log.failure("Reaping nodes", f))
        self.log.info("Redis store at {where}, key prefix {prefix!r}, node {node}", where=where, prefix=self._prefix, node=self.node)

    def start(self):
        return Deferred.fromCoroutine(self._start())

    async def _stop(self) -> None:
        for loop in (self._renewing, self._reaping):
            if loop is not None and loop.running:
                loop.stop()
        try:
            # A node that stops gives back what it still holds at once.
            await self._reap(self.node)
            await self._call("delete", self._node_key(self.node))
            await self._call("srem", self._prefix_bytes + b"nodes", self._node_bytes)
        except StorageError as e:
            self.log.warn("Could not give back this node's deliveries: {problem}", problem=e.detail)
        await self._disconnect()

    def stop(self):
        return Deferred.fromCoroutine(self._stop())

    async def _disconnect(self) -> None:
        if self._watchdog is not None and self._watchdog.running:
            self._watchdog.stop()
        for factory in (getattr(self._redis, "_factory", None), self._subscriber_factory, self._sentinel):
            if factory is not None:
                try:
                    await factory.disconnect()
                except Exception:
                    pass

    # Node leases

    def _node_key(self, node: str) -> bytes:
        return f"{self._prefix}node:{node}".encode()

    async def _take_node_lease(self) -> None:
        """
        Take this node's lease. A lease under this node's id still held is a
        node of that id that crashed (wait for its lease to lapse, then
        take back what it held) or one still running (which keeps renewing
        it: refuse to start).
        """
        lease_ms = int(self.settings.node_lease * 1000)
        deadline = self._reactor.seconds() + self.settings.node_lease * 1.5
        while not await self._call("set", self._node_key(self.node), b"alive", None, lease_ms, True):
            if self._reactor.seconds() > deadline:
                raise ConfigError(f"node-id: {self.node!r} is in use by a running stompd node on this Redis")
            await _sleep(self._reactor, min(0.5, self.settings.node_lease / 4))
        await self._reap(self.node)
        await self._call("sadd", self._prefix_bytes + b"nodes", self._node_bytes)

    async def _renew(self) -> None:
        try:
            lease_ms = b"%d" % (self.settings.node_lease * 1000)
            # txredisapi has no pexpire().
            if not await self._call("execute_command", b"PEXPIRE", self._node_key(self.node), lease_ms):
                # Lapsed meanwhile (Redis was away longer than the lease):
                # the others may have given back what this node held.
                self.log.warn("Node lease of {node} had lapsed; taken again", node=self.node)
                await self._call("set", self._node_key(self.node), b"alive", None, int(lease_ms), False)
        except StorageError as e:
            self.log.warn("Node lease not renewed: {problem}", problem=e.detail)

    async def _reap(self, node: str) -> None:
        """
        Give back every delivery C{node} holds, in every queue.
        """
        holdings = f"{self._prefix}node:{node}:queues".encode()
        for queue in await self._call("smembers", holdings):
            report, _ = await self._script(scripts.REAP_NODE, queue.decode(), node.encode())
            # The messages came back by the store's doing: this node's
            # consumers are told as well as the others'.
            self._report(queue.decode(), report)
            self._announce([queue])
        await self._call("delete", holdings)

    async def _reap_gone_nodes(self) -> None:
        try:
            for node in await self._call("smembers", self._prefix_bytes + b"nodes"):
                name = node.decode()
                if name != self.node and not await self._call("exists", self._node_key(name)):
                    self.log.info("Node {node} is gone; its deliveries come back", node=name)
                    await self._reap(name)
                    await self._call("srem", self._prefix_bytes + b"nodes", node)
        except StorageError as e:
            self.log.warn("Could not check other nodes: {problem}", problem=e.detail)

    # Pub/sub

    def _subscribed(self) -> None:
        if self._ever_subscribed:
            # Back after losing Redis: what came meanwhile was missed.
            self.log.info("Redis connection back")
            if self._owed:
                self._pay_back_soon()
            for callback in self._watchers:
                callback(None)
        elif not self._listening.called:
            self._listening.callback(None)
        self._ever_subscribed = True

    def _received(self, channel: bytes, data: bytes) -> None:
        try:
            if channel == self._work_channel:
                node, _, queue = data.partition(b" ")
                if node != self._node_bytes:
                    name = queue.decode()
                    for callback in self._watchers:
                        callback(name)
            elif channel == self._topic_channel:
                node, vhost, topic, packed = msgpack.unpackb(data, raw=True)
                if node != self._node_bytes:
                    message = unpack_message_packed(packed)
                    for callback in self._topic_watchers:
                        callback(vhost.decode(), topic.decode(), message)
            elif channel == self._bindings_channel:
                node, vhost, queue, pattern = msgpack.unpackb(data, raw=True)
                if node != self._node_bytes:
                    for callback in self._binding_watchers:
                        callback(vhost.decode(), queue.decode(), pattern.decode() if pattern else None)
        except Exception:
            self.log.failure("Bad pub/sub message on {channel}", channel=channel)

    # ITimedStore

    def time_calls(self, observe) -> None:
        # Each script run is timed once, in _eval.
        self._observe = observe

    # IMessageStore

    def watch(self, callback) -> None:
        self._watchers.append(callback)

    def watch_dead_letters(self, callback) -> None:
        self._dead_letter_watchers.append(callback)

    def watch_topics(self, callback) -> None:
        self._topic_watchers.append(callback)

    def publish(self, vhost, topic, message):
        data = msgpack.packb([self._node_bytes, vhost.encode(), topic.encode(), pack_message(message)], use_bin_type=True)
        # Batched like SENDs to queues: one round trip for a turn's topic
        # messages. The queue name only keys the batch.
        return self._batched(scripts.PUBLISH, "", [data])

    def bind(self, vhost, queue, pattern):
        return self._binding(vhost, queue, pattern)

    def unbind(self, vhost, queue):
        return self._binding(vhost, queue, None)

    def _binding(self, vhost: str, queue: str, pattern: str | None) -> Deferred:
        record = msgpack.packb([vhost, pattern or False], use_bin_type=False)
        notice = msgpack.packb([self.node, vhost, queue, pattern or False], use_bin_type=False)
        return self._script(scripts.BIND, queue, record if pattern else b"", notice)

    async def _bindings(self) -> list:
        found = []
        flat = await self._call("hgetall", self._prefix_bytes + b"bindings")
        for queue, record in (flat.items() if isinstance(flat, dict) else zip(flat[::2], flat[1::2])):
            vhost, pattern = msgpack.unpackb(record, raw=True)
            found.append((vhost.decode(), queue.decode(), pattern.decode()))
        return found

    def bindings(self):
        return Deferred.fromCoroutine(self._bindings())

    def watch_bindings(self, callback) -> None:
        self._binding_watchers.append(callback)

    def enqueue(self, queue, messages):
        args = []
        for message in messages:
            args += (message.id.encode(), pack_head(message), message.body, pack_state(message))
        return self._batched(scripts.ENQUEUE, queue, args)

    def reserve(self, queue, limit, now, policy):
        reserving = self._script(scripts.RESERVE, queue, b"%d" % limit, _bytes(float(now)), _policy(policy))
        return reserving.addCallback(self._reserved, queue)

    def _reserved(self, reply, queue: str) -> list:
        report, taken = reply
        self._report(queue, report)
        return [unpack_message(taken[n], taken[n + 1], taken[n + 2]) for n in range(0, len(taken), 3)]

    def _moved(self, reply, queue: str) -> int:
        report, settled = reply
        self._report(queue, report)
        return settled

    def ack(self, queue, deliveries):
        if not deliveries:
            return succeed(0)
        return self._batched(scripts.ACK, queue, _pairs(deliveries))

    def release(self, queue, deliveries, visible_at):
        if not deliveries:
            return succeed(0)
        when = b"" if visible_at is None else _bytes(float(visible_at))
        releasing = self._script(scripts.RELEASE, queue, when, *_pairs(deliveries)).addCallback(self._moved, queue)
        return releasing.addErrback(self._give_back_later, scripts.RELEASE, queue, [when, *_pairs(deliveries)])

    def unreserve(self, queue, deliveries):
        if not deliveries:
            return succeed(0)
        giving = self._script(scripts.UNRESERVE, queue, *_pairs(deliveries))
        return giving.addErrback(self._give_back_later, scripts.UNRESERVE, queue, _pairs(deliveries))

    def _give_back_later(self, failure, script: str, queue: str, args: list):
        """
        Messages this node could not give back (Redis was away) would stay
        in flight under this living node for ever: keep the call, and make
        it again once Redis is back. The caller still learns it failed.
        """
        if failure.check(StorageError):
            if len(self._owed) < _MAX_OWED:
                self._owed.append((script, queue, args))
            else:
                self.log.error(
                    "Too many deliveries of {queue} not given back while Redis was away; "
                    "restart this node to have them redelivered",
                    queue=queue,
                )
        return failure

    async def _pay_back(self) -> None:
        owed, self._owed = self._owed, []
        for script, queue, args in owed:
            try:
                reply = await self._script(script, queue, *args)
            except StorageError:
                self._owed.append((script, queue, args))
                continue
            if isinstance(reply, list):
                self._report(queue, reply[0])
            self._announce([queue.encode()])
        if self._owed:
            # The shared connection may come back later than pub/sub's.
            self._reactor.callLater(1.0, self._pay_back_soon)

    def _pay_back_soon(self) -> None:
        Deferred.fromCoroutine(self._pay_back()).addErrback(
            lambda failure: self.log.failure("Giving back deliveries", failure)
        )

    def dead_letter(self, queue, deliveries, reason):
        if not deliveries:
            return succeed(0)
        return self._script(scripts.DEAD_LETTER, queue, reason.encode(), *_pairs(deliveries)).addCallback(self._moved, queue)

    def next_visible_at(self, queue):
        return self._script(scripts.NEXT_VISIBLE_AT, queue).addCallback(lambda when: None if when is None else float(when))

    def depth(self, queue):
        return self._script(scripts.DEPTH, queue)

    def purge(self, queue):
        return self._script(scripts.PURGE, queue).addCallback(int)

    def delete(self, queue):
        return self._script(scripts.DELETE, queue).addCallback(lambda _: None)


def _sleep(reactor, seconds: float) -> Deferred:
    waiting = Deferred()
    reactor.callLater(seconds, waiting.callback, None)
    return waiting


class _MasterOnly:
    """
    For connections found through Sentinel: drop one that reached a Redis
    that is not (or no longer) the master, so that it is made again to the
    master Sentinel names. (txredisapi's own check compares the role with
    text, which a connection that reads bytes never matches.)
    """

    def connectionMade(self):
        def check_role(role):
            if role[0] not in (b"master", "master"):
                self.transport.loseConnection()
                return succeed(None)
            return super(_MasterOnly, self).connectionMade()

        if self.password is not None:
            self.auth(self.password, self.username)
        return self.role().addCallback(check_role)


class _SentinelMain(_MasterOnly, _Protocol):
    pass


class _SentinelSubscriber(_MasterOnly, _Subscriber):
    pass


class _SentinelMainFactory(txredisapi.SentinelConnectionFactory):
    protocol = _SentinelMain


class _SentinelSubscriberFactory(txredisapi.SentinelConnectionFactory):
    protocol = _SentinelSubscriber


def create_store(config, reactor, settings: RedisSettings) -> RedisStore:
    """
    The C{redis} entry point of group C{stompd.storage}.
    """
    return RedisStore(settings, config.node_id or os.urandom(4).hex(), reactor)


create_store.parse_config = parse_config
