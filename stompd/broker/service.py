"""
The broker service: owns the virtual hosts, the store and the authenticator,
and is what every session, whatever its transport, talks to.
"""

import dataclasses
import os

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from stompd.broker.admission import Admission, peer_address
from stompd.broker.authorization import Authorization
from stompd.broker.dispatch import DispatchGate
from stompd.broker.message import MessageIds
from stompd.broker.metrics import BrokerCounters, TimedStore
from stompd.broker.remote import BrokerFacade, ConnectorRoutes
from stompd.broker.vhost import VirtualHost
from stompd.config import Config
from stompd.interfaces import IReloadable

DEFAULT_VHOST = "/"
# Seconds between samples of queue publish rates (for the API and console).
RATE_INTERVAL = 5.0


class BrokerService(Service):
    """
    The STOMP broker, as a service in the twistd service tree: it starts
    its store, then its connectors, and stops them in the other order.

    @ivar config: the L{Config} it runs with.
    @ivar node_id: this node's name among the brokers sharing the store.
    @ivar clock: the reactor (or a C{Clock} in tests) for time and timers.
    @ivar sessions: the sessions connected now.
    @ivar connectors: the L{ConnectorRoutes} of the configured
        L{stompd.interfaces.IConnector}s.
    @ivar authorization: the L{Authorization} of every session's frames.
    @ivar dispatch_gate: held by a session while it handles what one read
        brought, so that queues dispatch once per burst of frames.
    """

    log = Logger()
    name = "broker"

    def __init__(self, config: Config, store, authenticator, clock, connectors=()) -> None:
        self.config = config
        self.clock = clock
        # A shared store's message calls are timed, for the metrics (the
        # memory store's take no time worth a histogram).
        if store.shared:
            store = TimedStore(store, clock)
        self.store = store
        self.authenticator = authenticator
        self.node_id = config.node_id or os.urandom(4).hex()
        self.message_ids = MessageIds(self.node_id)
        self.dispatch_gate = DispatchGate()
        self.authorization = Authorization(config.authorization)
        self.admission = Admission(config.limits, clock)
        self.counters = BrokerCounters()
        self.started_at = clock.seconds()
        self._sampling = None
        # Sessions counted in by admission, with their peers.
        self._admitted: dict = {}
        self.sessions: set = set()
        self._closed: dict = {}
        self.connectors = ConnectorRoutes(connectors)
        self.vhosts = {
            name: VirtualHost(
                name,
                store,
                clock,
                self.message_ids,
                config.queues,
                self.dispatch_gate,
                self.connectors,
                self.admission.log,
            )
            for name in config.virtual_hosts
        }
        store.watch(self._work_arrived)
        store.watch_topics(self._topic_arrived)
        store.watch_bindings(self._binding_changed)
        store.watch_dead_letters(self._taken_out)

    def _taken_out(self, queue: str, reason: str, dead_letter_queue: str | None, count: int) -> None:
        self.counters.taken_out(reason, dead_letter_queue, count)

    def _work_arrived(self, key: str | None) -> None:
        # Store names are unique across virtual hosts (they carry its prefix).
        for vhost in self.vhosts.values():
            vhost.work_arrived(key)

    def _topic_arrived(self, vhost: str, topic: str, message) -> None:
        # A virtual host this node does not have has no subscribers here.
        found = self.vhosts.get(vhost)
        if found is not None:
            found.topic_arrived(topic, message)

    def _binding_changed(self, vhost: str, queue: str, pattern: str | None) -> None:
        found = self.vhosts.get(vhost)
        if found is not None:
            found.bound(queue, pattern)

    def startService(self) -> Deferred:
        """
        Start the store, read the durable subscriptions it keeps, then
        start the connectors. The returned Deferred fails if one cannot
        start; the twistd tap turns that into a start-up error.
        """
        Service.startService(self)
        self.log.info("stompd node {node} starting its store", node=self.node_id)
        return Deferred.fromCoroutine(self._start())

    def _sample_rates(self) -> None:
        now = self.clock.seconds()
        for vhost in self.vhosts.values():
            for queue in vhost.queues.values():
                queue.counts.sample(now)
            vhost.topics.sample(now)

    async def _start(self) -> None:
        self._sampling = LoopingCall(self._sample_rates)
        self._sampling.clock = self.clock
        self._sampling.start(RATE_INTERVAL, now=True).addErrback(lambda f: self.log.failure("Sampling rates", f))
        await maybeDeferred(self.store.start)
        for vhost, queue, pattern in await self.store.bindings():
            self._binding_changed(vhost, queue, pattern)
        facade = BrokerFacade(self)
        for connector in self.connectors.connectors:
            await maybeDeferred(connector.start, facade)

    def stopService(self) -> Deferred:
        """
        Tell every connected client the broker is going away, wait for the
        connections to close (up to C{shutdown-timeout}), then stop the store.
        """
        Service.stopService(self)
        if self._sampling is not None and self._sampling.running:
            self._sampling.stop()
        closing = []
        for session in list(self.sessions):
            # Fired by detach, even if the session goes at once.
            closed = self._closed[session] = Deferred()
            closing.append(closed)
            session.shut_down("broker shutting down")
        # consumeErrors: the timeout cancels the waits of clients that did not
        # go, which is expected and must not be logged as unhandled errors.
        waited = DeferredList(closing, consumeErrors=True)
        if closing:
            timer = self.clock.callLater(self.config.shutdown_timeout, waited.cancel)
            waited.addBoth(lambda result: timer.active() and timer.cancel())
        waited.addBoth(lambda _: self._stop_connectors())
        waited.addBoth(lambda _: self.store.stop())
        return waited

    def _stop_connectors(self) -> Deferred:
        stopping = [maybeDeferred(connector.stop) for connector in self.connectors.connectors]
        return DeferredList(stopping, consumeErrors=True)

    def reload(self, config: Config) -> None:
        """
        Take the users, tokens and authorization rules of a new
        configuration (SIGHUP). Connections stay; what they may do from now
        on follows the new rules.

        @raise ConfigError: if it is bad; nothing changed then.
        """
        authorization = Authorization(config.authorization)
        if IReloadable.providedBy(self.authenticator):
            self.authenticator.reload(config)
        self.authorization = authorization
        self.config = dataclasses.replace(self.config, auth=config.auth, authorization=config.authorization)

    def new_session_id(self) -> str:
        return "session-" + os.urandom(9).hex()

    def virtual_host(self, name: str | None) -> VirtualHost:
        """
        The virtual host a CONNECT's C{host} header selects: one configured
        under that name, else the default. Never fails, because clients such
        as Spring send whatever host name they connected to.
        """
        return self.vhosts.get(name) or self.vhosts[DEFAULT_VHOST]

    def authenticate(self, login: str | None, passcode: str | None, vhost: str) -> Deferred:
        """
        Check a CONNECT's credentials.

        @return: a Deferred firing with the user name, or failing with
            L{stompd.errors.AuthenticationError}.
        """
        return maybeDeferred(self.authenticator.authenticate, login, passcode, vhost)

    def groups(self, user: str) -> frozenset:
        """
        An authenticated user's groups, for authorization.
        """
        return frozenset(self.authenticator.groups(user))

    def attach(self, session):
        """
        A session has connected.

        @return: C{None}, or the L{stompd.errors.StompError} it is refused
            with by C{[limits]}: the session sends it and closes.
        """
        self.sessions.add(session)
        self.counters.connections_opened[session.kind] += 1
        # The address, not the peer object: one string an idle connection
        # shares with its transport.
        address = peer_address(session.transport.getPeer())
        refusal = self.admission.admit(address)
        if refusal is None:
            self._admitted[session] = address
        return refusal

    def detach(self, session) -> None:
        """
        A session's connection is gone.
        """
        if session in self.sessions:
            self.counters.connections_closed[session.kind] += 1
            self.counters.fold(session.kind, session.counts)
        self.sessions.discard(session)
        address = self._admitted.pop(session, None)
        if address is not None:
            self.admission.release(address)
        waiter = self._closed.pop(session, None)
        if waiter is not None:
            waiter.callback(None)
