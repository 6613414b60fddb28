"""
The client side of STOMP, on the broker's own codec: one upstream broker,
its connection kept up by Twisted's C{ClientService}, its subscriptions
made again on every new connection.
"""

import itertools
from collections import deque

from twisted.application.internet import ClientService
from twisted.internet.defer import Deferred, TimeoutError, fail, succeed
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger

from stompd.codec import Frame, FrameParser, encode_frame
from stompd.errors import FrameError, StompError
from stompd.session.heartbeat import HeartBeats

# What a connector tells a client whose frame could not go upstream.
NOT_CONNECTED = "upstream not connected"
NOT_CONFIRMED = "upstream did not confirm"
REFUSED = "upstream refused"

# An upstream silent for its heart-beat interval times this is cut off, as
# the broker does with its own clients.
HEART_BEAT_GRACE = 2.0


class UpstreamProtocol(Protocol):
    """
    One connection to an upstream broker: CONNECT, then frames both ways.

    @ivar version: the STOMP version the upstream chose, once CONNECTED;
        C{None} before.
    """

    def __init__(self, upstream: "Upstream") -> None:
        self.upstream = upstream
        self.version: str | None = None
        self._parser = FrameParser()
        self._beats: HeartBeats | None = None
        self._handshake_timer = None

    def connectionMade(self) -> None:
        settings = self.upstream.settings
        send, receive = settings.heart_beat
        headers = {"accept-version": "1.0,1.1,1.2", "host": settings.host, "heart-beat": f"{send},{receive}"}
        if settings.login:
            headers["login"] = settings.login
            headers["passcode"] = settings.passcode
        self.send_frame("CONNECT", headers)
        self._handshake_timer = self.upstream.clock.callLater(settings.send_timeout, self._handshake_timed_out)

    def _handshake_timed_out(self) -> None:
        self._handshake_timer = None
        self.upstream.log.warn("{name}: no CONNECTED from upstream in time", name=self.upstream.name)
        self.transport.abortConnection()

    def dataReceived(self, data: bytes) -> None:
        if self._beats is not None:
            self._beats.received()
        try:
            self._parser.feed(data)
            while (frame := self._parser.next_frame()) is not None:
                self._frame_received(frame)
        except FrameError as e:
            self.upstream.log.warn("{name}: bad frame from upstream: {problem}", name=self.upstream.name, problem=e.message)
            self.transport.abortConnection()

    def _frame_received(self, frame: Frame) -> None:
        command = frame.command
        if command == "CONNECTED" and self.version is None:
            self._connected(frame.headers)
        elif command == "MESSAGE":
            self.upstream.message_arrived(self, frame)
        elif command == "RECEIPT":
            self.upstream.receipt_arrived(frame.headers.get("receipt-id", ""))
        elif command == "ERROR":
            self.upstream.error_arrived(self, frame)

    def _connected(self, headers: dict) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        self.version = headers.get("version", "1.0")
        self._parser.version = self.version if self.version in ("1.1", "1.2") else "1.0"
        send, receive = self.upstream.settings.heart_beat
        server_sends, server_wants = _beat_header(headers.get("heart-beat"))
        send_every = max(send, server_wants) if send and server_wants else 0
        expect_every = max(receive, server_sends) if receive and server_sends else 0
        if send_every or expect_every:
            self._beats = HeartBeats(
                self.upstream.clock,
                send_every / 1000.0,
                expect_every * HEART_BEAT_GRACE / 1000.0,
                beat=lambda: self.transport.write(b"\n"),
                timed_out=self._heart_beat_timed_out,
            )
        self.upstream.connection_ready(self)

    def _heart_beat_timed_out(self) -> None:
        self.upstream.log.warn("{name}: upstream heart-beats stopped; reconnecting", name=self.upstream.name)
        self.transport.abortConnection()

    def send_frame(self, command: str, headers: dict, body: bytes = b"") -> None:
        if body:
            headers["content-length"] = str(len(body))
        self.transport.write(encode_frame(Frame(command, headers, body), self.version or "1.0"))
        if self._beats is not None:
            self._beats.sent()

    def connectionLost(self, reason) -> None:
        if self._beats is not None:
            self._beats.stop()
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        self.upstream.connection_lost(self)


def _beat_header(value: str | None) -> tuple[int, int]:
    parts = (value or "0,0").split(",")
    if len(parts) != 2 or not all(part.strip().isdigit() for part in parts):
        return 0, 0
    return int(parts[0]), int(parts[1])


class _UpstreamFactory(Factory):
    # Reconnecting would log a start and a stop for every attempt.
    noisy = False

    def __init__(self, upstream: "Upstream") -> None:
        self.upstream = upstream

    def buildProtocol(self, addr) -> UpstreamProtocol:
        return UpstreamProtocol(self.upstream)


class _Subscription:
    __slots__ = ("destination", "headers", "on_message", "confirmed")

    def __init__(self, destination: str, headers: dict, on_message) -> None:
        self.destination = destination
        self.headers = headers
        self.on_message = on_message
        # Fired by the upstream's first RECEIPT for it.
        self.confirmed: Deferred | None = None


class Upstream:
    """
    One upstream broker. It reconnects with back-off for as long as it
    runs; while it is connected, frames go straight to it.

    @ivar name: the connector's name, for logs and errors.
    @ivar settings: the connector's L{stompd.connectors.settings.UpstreamSettings}.
    @ivar clock: the reactor, or a C{Clock}.
    @ivar connected: the L{UpstreamProtocol} of the live connection (its
        CONNECTED received), or C{None}.
    @ivar generation: counts connections; an upstream delivery is named
        with the generation it came in, because the next connection's
        broker does not know it.
    """

    log = Logger()

    def __init__(
        self,
        name: str,
        endpoint,
        settings,
        clock,
        retry_policy,
        on_change=None,
        noisy: bool = True,
        max_attempts: int = 0,
        label: str = "",
    ) -> None:
        """
        @param on_change: called with this upstream when it connects,
            loses its connection, or gives up.
        @param noisy: log connecting and losing the connection at info
            level (else debug: for one connection of many).
        @param max_attempts: failed attempts in a row after which it gives
            up (L{failed}); 0 or less for never.
        @param label: which upstream this is, in logs (its URI).
        """
        self.name = name
        self.label = label
        self.failed = False
        self._noisy = noisy
        self._max_attempts = max_attempts
        self.settings = settings
        self.clock = clock
        self.connected: UpstreamProtocol | None = None
        self.generation = 0
        self._on_change = on_change
        self._ids = itertools.count(1)
        self._receipts: dict[str, Deferred] = {}
        self._subscriptions: dict[str, _Subscription] = {}
        # SENDs waiting for a connection (at most settings.buffer).
        self._waiting: deque = deque()
        self._last_error = ""
        self._retry_policy = retry_policy
        # Connections that ended before CONNECTED: ClientService counts
        # only failed TCP connects, and would retry a broker refusing our
        # login at the shortest delay for ever.
        self._refused = 0
        self._service = ClientService(endpoint, _UpstreamFactory(self), retryPolicy=self._retry_delay, clock=clock)

    def _retry_delay(self, failed_attempts: int) -> float:
        # A refused login counts as one failed attempt more than the last.
        attempts = failed_attempts + max(self._refused - 1, 0)
        if 0 < self._max_attempts < attempts:
            self.clock.callLater(0, self._give_up, attempts)
        return self._retry_policy(attempts)

    def _give_up(self, attempts: int) -> None:
        if self.failed:
            return
        self.failed = True
        self.log.error(
            "{name}: giving up on upstream {label} after {attempts} failed attempts", name=self.name, label=self.label, attempts=attempts - 1
        )
        self.stop()
        if self._on_change is not None:
            self._on_change(self)

    @property
    def backlog(self) -> int:
        """
        Frames waiting for this upstream: buffered, or awaiting its RECEIPT.
        """
        return len(self._waiting) + len(self._receipts)

    def _log(self, format: str, **fields) -> None:
        (self.log.info if self._noisy else self.log.debug)(format, **fields)

    def start(self) -> None:
        self._service.startService()

    def stop(self) -> Deferred:
        """
        Disconnect and stop reconnecting; what waits for the upstream fails.
        """
        self._fail_waiting(NOT_CONNECTED, "The broker is stopping.")
        stopping = self._service.stopService()
        return stopping.addErrback(lambda failure: self.log.failure("{name}: stopping", failure, name=self.name))

    # Connection events, from UpstreamProtocol

    def connection_ready(self, protocol: UpstreamProtocol) -> None:
        self.connected = protocol
        self.generation += 1
        self._refused = 0
        self._last_error = ""
        self._log(
            "{name}: connected to upstream {label} (STOMP {version})", name=self.name, label=self.label, version=protocol.version
        )
        for subscription_id, subscription in self._subscriptions.items():
            protocol.send_frame("SUBSCRIBE", self._subscribe_headers(subscription_id, subscription))
        while self._waiting and self.connected is protocol:
            headers, body, confirm, waiter, timer = self._waiting.popleft()
            timer.cancel()
            self._forward(headers, body, confirm).chainDeferred(waiter)
        if self._on_change is not None:
            self._on_change(self)

    def connection_lost(self, protocol: UpstreamProtocol) -> None:
        if protocol is not self.connected:
            self._refused += 1
            return
        self.connected = None
        self._log("{name}: lost the connection to upstream {label}", name=self.name, label=self.label)
        receipts, self._receipts = self._receipts, {}
        detail = "The upstream connection was lost before the upstream confirmed it."
        if self._last_error:
            detail += f" The upstream said: {self._last_error}"
        for waiter in receipts.values():
            if not waiter.called:
                waiter.errback(StompError(f"connector {self.name}: {NOT_CONFIRMED}", detail))
        if self._on_change is not None:
            self._on_change(self)

    def message_arrived(self, protocol: UpstreamProtocol, frame: Frame) -> None:
        headers = frame.headers
        subscription = self._subscriptions.get(headers.get("subscription", ""))
        if subscription is None:
            # Unsubscribed meanwhile.
            return
        name = headers.get("ack") or headers.get("message-id", "")
        subscription.on_message(headers, frame.body, (self.generation, headers.get("subscription", ""), name))

    def receipt_arrived(self, receipt_id: str) -> None:
        waiter = self._receipts.pop(receipt_id, None)
        # One that timed out meanwhile has fired.
        if waiter is not None and not waiter.called:
            waiter.callback(None)

    def error_arrived(self, protocol: UpstreamProtocol, frame: Frame) -> None:
        message = frame.headers.get("message", "")
        detail = frame.body.decode("utf-8", "replace").strip()
        self._last_error = f"{message}: {detail}" if detail else message
        self.log.warn("{name}: upstream sent ERROR {message}", name=self.name, message=self._last_error)
        waiter = self._receipts.pop(frame.headers.get("receipt-id", ""), None)
        if waiter is not None and not waiter.called:
            waiter.errback(StompError(f"connector {self.name}: {REFUSED}", self._last_error))
        # The upstream closes the connection after an ERROR; one refusing
        # CONNECT may not.
        if protocol.version is None:
            protocol.transport.loseConnection()

    # Sending

    def send(self, headers: dict, body: bytes, confirm: bool) -> Deferred:
        """
        Forward a SEND.

        @param confirm: wait for the upstream's RECEIPT.
        @return: a Deferred firing once it is written (or, with C{confirm},
            confirmed by the upstream), failing with a L{StompError} naming
            the connector when there is no connection, no room to wait for
            one, or no RECEIPT within C{send-timeout}.
        """
        if self.connected is not None:
            return self._forward(headers, body, confirm)
        if len(self._waiting) >= self.settings.buffer:
            detail = f"Connector {self.name!r} is not connected to its upstream broker."
            if self.settings.buffer:
                detail += f" {self.settings.buffer} messages already wait for it."
            return fail(StompError(f"connector {self.name}: {NOT_CONNECTED}", detail))
        waiter = Deferred()
        entry = [headers, body, confirm, waiter, None]
        entry[4] = self.clock.callLater(self.settings.send_timeout, self._waited_too_long, entry)
        self._waiting.append(entry)
        return waiter

    def _waited_too_long(self, entry) -> None:
        self._waiting.remove(entry)
        entry[3].errback(
            StompError(
                f"connector {self.name}: {NOT_CONNECTED}",
                f"Connector {self.name!r} was not connected to its upstream within {self.settings.send_timeout} s.",
            )
        )

    def _forward(self, headers: dict, body: bytes, confirm: bool) -> Deferred:
        if not confirm:
            self.connected.send_frame("SEND", headers, body)
            return succeed(None)
        receipt = headers["receipt"] = f"r{next(self._ids)}"
        waiter = self._receipts[receipt] = Deferred()
        self.connected.send_frame("SEND", headers, body)
        return self._within_timeout(waiter, receipt)

    def _within_timeout(self, waiter: Deferred, receipt: str) -> Deferred:
        timeout = self.settings.send_timeout

        def timed_out(failure):
            if failure.check(TimeoutError):
                self._receipts.pop(receipt, None)
                raise StompError(
                    f"connector {self.name}: {NOT_CONFIRMED}",
                    f"Connector {self.name!r}'s upstream did not confirm within {timeout} s.",
                )
            return failure

        return waiter.addTimeout(timeout, self.clock).addErrback(timed_out)

    def _fail_waiting(self, message: str, detail: str) -> None:
        waiting, self._waiting = self._waiting, deque()
        for _, _, _, waiter, timer in waiting:
            timer.cancel()
            waiter.errback(StompError(f"connector {self.name}: {message}", detail))

    # Subscriptions

    def subscribe(self, destination: str, headers: dict, on_message) -> tuple[str, Deferred]:
        """
        Subscribe upstream, now and on every later connection.
        C{on_message(headers, body, upstream_id)} is called for each
        MESSAGE; L{settle} takes C{upstream_id} back.

        @return: the subscription's id here, and a Deferred firing once
            the upstream confirmed it (when it is not connected: once it
            is, and confirmed it), failing with a L{StompError} if that
            takes longer than C{send-timeout} or the upstream refuses.
        """
        subscription_id = f"s{next(self._ids)}"
        subscription = self._subscriptions[subscription_id] = _Subscription(destination, headers, on_message)
        subscription.confirmed = Deferred()
        confirmed = subscription.confirmed.addTimeout(self.settings.send_timeout, self.clock)
        confirmed.addErrback(self._not_confirmed, subscription)
        if self.connected is not None:
            self.connected.send_frame("SUBSCRIBE", self._subscribe_headers(subscription_id, subscription))
        return subscription_id, confirmed

    def _not_confirmed(self, failure, subscription: _Subscription):
        subscription.confirmed = None
        if failure.check(TimeoutError):
            raise StompError(
                f"connector {self.name}: {NOT_CONFIRMED}",
                f"Connector {self.name!r}'s upstream did not confirm the subscription within "
                f"{self.settings.send_timeout} s.",
            )
        return failure

    def _subscribe_headers(self, subscription_id: str, subscription: _Subscription) -> dict:
        headers = {**subscription.headers, "destination": subscription.destination, "id": subscription_id}
        if subscription.confirmed is not None:
            # Its subscriber waits for the first confirmation.
            receipt = headers["receipt"] = f"r{next(self._ids)}"
            self._receipts[receipt] = subscription.confirmed
            subscription.confirmed = None
        return headers

    def unsubscribe(self, subscription_id: str) -> None:
        if self._subscriptions.pop(subscription_id, None) is not None and self.connected is not None:
            self.connected.send_frame("UNSUBSCRIBE", {"id": subscription_id})

    def settle(self, upstream_id, ack: bool, requeue: bool = True) -> bool:
        """
        ACK (or NACK) an upstream delivery.

        @return: whether it went upstream: not for a delivery of an earlier
            connection, which the upstream delivers again anyway.
        """
        generation, subscription_id, name = upstream_id
        protocol = self.connected
        if protocol is None or generation != self.generation or (protocol.version == "1.0" and not ack):
            # STOMP 1.0 has no NACK: the upstream redelivers on reconnect.
            return False
        if protocol.version == "1.2":
            headers = {"id": name}
        else:
            headers = {"message-id": name, "subscription": subscription_id}
        if not ack and not requeue:
            headers["requeue"] = "false"
        protocol.send_frame("ACK" if ack else "NACK", headers)
        return True


def backoff(initial_delay: float, max_delay: float, multiplier: float = 2.0, exponential: bool = True):
    """
    A C{ClientService} retry policy as ActiveMQ's reconnecting transports
    have it: C{initial_delay} seconds after the first failed attempt,
    multiplied by C{multiplier} after each further one, at most
    C{max_delay}; or always C{initial_delay} when not C{exponential}.
    """

    def delay(failed_attempts: int) -> float:
        if not exponential:
            return initial_delay
        # Bounded exponent: a broker down for days must not overflow.
        return min(initial_delay * multiplier ** min(failed_attempts - 1, 64), max_delay)

    return delay
