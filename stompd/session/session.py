"""
One STOMP session: the frames of one client connection, whatever carries
them.

A transport feeds bytes to L{StompSession.data_received} and reports the end
with L{StompSession.connection_lost}; the session writes to an
L{stompd.interfaces.ISessionTransport}. Frames are handled strictly in order:
when a frame's effect waits on the store, reading from the client pauses
until it is done. SENDs, ACKs and NACKs are the exception: the next frame is read
while they are stored (in order, by the store), their RECEIPTs are sent in
order once stored, and any later frame of another kind with a receipt
waits for them. The plain SENDs and ACKs of one read (no receipt, no
transaction) go to the broker together, one call per destination or
subscription, before the next frame of another kind.
"""

import ipaddress
import sys
from collections import deque
from collections.abc import Mapping
from types import MappingProxyType

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from stompd import __version__
from stompd.broker.authorization import READ, WRITE, ReadCheck
from stompd.broker.destination import QUEUE, REMOTE, TEMP_QUEUE_PREFIX, TOPIC, is_pattern, reply_destination
from stompd.broker.headers import number_header
from stompd.broker.metrics import SessionCounts
from stompd.broker.policy import DEFAULT_POLICY
from stompd.broker.queue import ACK, REJECT, RELEASE
from stompd.broker.subscription import ACK_MODES, AUTO, CLIENT_INDIVIDUAL, Subscription
from stompd.codec import SUPPORTED_VERSIONS, Frame, FrameParser, encode_frame, escape_header
from stompd.errors import AuthenticationError, DestinationError, FrameError, ProtocolError, StompError
from stompd.interfaces import IDeliveryTarget
from stompd.session.heartbeat import HeartBeats, negotiate

_CONNECT_COMMANDS = ("CONNECT", "STOMP")
# Frames whose effect is stored, which a session reads past while it is.
_STORED_COMMANDS = ("SEND", "ACK", "NACK")
# SENDs, ACKs and NACKs whose storing a session does not wait for before
# reading on (a store over the network answers each after a round trip);
# past this many, it waits until no more than RESUME_UNCONFIRMED are left:
# one pause and resume of reading per half a window, not one per frame.
MAX_UNCONFIRMED = 256
RESUME_UNCONFIRMED = MAX_UNCONFIRMED // 2

# The most seconds a topic's publisher waits, once, for a subscriber with
# more than half of [limits] max-buffered waiting to drain it (L{room}):
# one that reads, however slowly, sets the pace; one that has stopped
# reading is left behind, and disconnected at max-buffered.
SUBSCRIBER_PATIENCE = 2.0


class _Unconfirmed:
    """
    A frame being stored: its store call, the RECEIPT it asked for, and
    whether it is stored.
    """

    __slots__ = ("storing", "receipt", "done")

    def __init__(self, storing: Deferred, receipt: str | None) -> None:
        self.storing = storing
        self.receipt = receipt
        self.done = False


class _Stored:
    """
    A handler's answer for a frame being stored: the session reads on (once
    C{waiter} fires, if there are too many) and sends its RECEIPT later.
    """

    __slots__ = ("waiter",)

    def __init__(self, waiter: Deferred | None) -> None:
        self.waiter = waiter


# The answer of a frame being stored that lets the session read on at once.
_READ_ON = _Stored(None)

_SUPPORTED = ",".join(SUPPORTED_VERSIONS)
# The groups of a session before it is authenticated (one shared set).
_NO_GROUPS: frozenset = frozenset()
# A session's subscriptions or transactions until it has one: shared, and
# read-only.
_NONE_YET: Mapping = MappingProxyType({})


def _joins(frame: Frame) -> bool:
    """
    Whether C{frame} is a SEND or ACK the session may hand to the broker
    together with the others of a read (see L{StompSession._join}): one
    that asks for no receipt, is not part of a transaction, and (a SEND)
    opens no reply queue.
    """
    command = frame.command
    if command != "SEND" and command != "ACK":
        return False
    headers = frame.headers
    if "receipt" in headers or "transaction" in headers:
        return False
    reply_to = headers.get("reply-to")
    return reply_to is None or not reply_to.startswith(TEMP_QUEUE_PREFIX)


def _required(frame: Frame, name: str) -> str:
    value = frame.headers.get(name)
    if value is None:
        raise ProtocolError(f"missing {name} header", f"A {frame.command} frame must have a {name!r} header.")
    return value


def _prefetch(headers: dict[str, str], ack_mode: str, default: int) -> int | None:
    """
    The prefetch limit a SUBSCRIBE asks for (RabbitMQ's C{prefetch-count} or
    ActiveMQ's C{activemq.prefetchSize}); 0 means no limit.
    """
    if ack_mode == AUTO:
        return None
    raw = headers.get("prefetch-count", headers.get("activemq.prefetchSize"))
    if raw is None:
        return default
    if not raw.isdigit():
        raise ProtocolError("invalid prefetch", f"The prefetch must be a whole number, not {raw!r}.")
    return int(raw) or None


# RabbitMQ's default user, and ours: for this host only, unless configured.
GUEST = "guest"


def certificate_user(transport) -> str | None:
    """
    The common name of the verified client certificate of C{transport},
    or C{None} (no TLS, or no certificate).
    """
    get = getattr(transport, "getPeerCertificate", None)
    if get is None:
        return None
    try:
        certificate = get()
    except Exception:
        return None
    if certificate is None:
        return None
    return certificate.get_subject().commonName or None


def _address(peer) -> str:
    host = getattr(peer, "host", None)
    if host is None:
        return "unix"
    return f"{host}:{peer.port}"


def _is_local(peer) -> bool:
    """
    Is C{peer} this host: a loopback address, or a UNIX socket?
    """
    host = getattr(peer, "host", None)
    if host is None:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _deadline_lines(message) -> bytes:
    """
    The C{expire-after} and C{visible-after} header lines of a queue
    message's MESSAGE frame (milliseconds since the epoch), for those it has.
    """
    if not message.delivery_count:
        # Topic messages are not stored: their deadlines mean nothing.
        return b""
    lines = b""
    if message.expires_at is not None:
        lines += b"expire-after:%d\n" % (message.expires_at * 1000)
    if message.visible_at is not None:
        lines += b"visible-after:%d\n" % (message.visible_at * 1000)
    return lines


def _nack_outcome(frame: Frame, clock) -> tuple[str, float | None]:
    """
    What a NACK asks for: C{requeue:false} (RabbitMQ) dead-letters the
    message; C{visibility:SECONDS} makes it visible again after that long
    rather than at once.

    @raise ProtocolError: for a malformed header.
    """
    headers = frame.headers
    requeue = headers.get("requeue", "true")
    if requeue not in ("true", "false"):
        raise ProtocolError("invalid requeue header", f"requeue must be true or false, not {requeue!r}.")
    if requeue == "false":
        return REJECT, None
    seconds = number_header(headers, "visibility", "seconds", decimal=True)
    return RELEASE, (clock.seconds() + seconds if seconds else None)


@implementer(IDeliveryTarget)
class StompSession:
    """
    The server side of one STOMP connection.

    @ivar session_id: unique id, sent in CONNECTED.
    @ivar version: the negotiated protocol version, C{None} before CONNECT.
    @ivar writable: the client is keeping up; the broker sends queue
        messages only while this is true.
    @ivar subscriptions: subscription id -> L{Subscription}.
    @ivar heart_beat_grace: a client silent for its heart-beat interval
        times this is disconnected; its transport's setting.
    @ivar oci_compat: behave as OCI Queue's STOMP interface: credentials
        required, C{client-individual} acknowledgement only, no
        transactions, queue ids as destinations.
    """

    # Slots, not a dict: a broker holds tens of thousands of idle sessions.
    __slots__ = (
        "_abort_timer",
        "_busy",
        "_close_reason",
        "_closing",
        "_connect_timer",
        "_connected_at",
        "_counters",
        "_frames_in",
        "_gone",
        "_heart_beats",
        "_held_frame",
        "_joined",
        "_looping",
        "_out",
        "_out_large",
        "_parser",
        "_paused_bytes",
        "_principal",
        "_reading_paused",
        "_registered",
        "_room",
        "_drained",
        "_transaction_bytes",
        "_transactions",
        "_unconfirmed",
        "_unconfirmed_room",
        "_takes_frames",
        "broker",
        "client_id",
        "clock",
        "config",
        "counts",
        "groups",
        "heart_beat_grace",
        "kind",
        "oci_compat",
        "session_id",
        "subscriptions",
        "transport",
        "user",
        "version",
        "vhost",
        "writable",
    )

    log = Logger()

    def __init__(
        self, broker, transport, heart_beat_grace: float | None = None, oci_compat: bool = False, kind: str = "tcp"
    ) -> None:
        self.broker = broker
        self.transport = transport
        # The transport's name, for logs and metrics: "tcp" or "websocket".
        self.kind = kind
        self._frames_in = 0
        self._close_reason = "client closed the connection"
        self._connected_at: float | None = None
        self._counters = broker.counters
        self.counts = SessionCounts()
        self.config = broker.config
        self.clock = broker.clock
        self.heart_beat_grace = broker.config.heart_beat.grace if heart_beat_grace is None else heart_beat_grace
        self.oci_compat = oci_compat
        self.session_id = broker.new_session_id()
        self.version: str | None = None
        self.user: str | None = None
        # The user's groups, for authorization.
        self.groups: frozenset = _NO_GROUPS
        # Whom authorization rules see: None for an anonymous client.
        self._principal: str | None = None
        self.vhost = None
        self.client_id = None
        self.writable = True
        # By id: a dict of its own once there is one (an idle session need
        # not hold an empty one).
        self.subscriptions: Mapping[str, Subscription] = _NONE_YET
        # Open transactions by name: a dict of its own once one is begun.
        self._transactions: Mapping[str, list[Frame]] = _NONE_YET
        self._transaction_bytes = 0
        self._parser = FrameParser(self.config.limits.frames)
        self._heart_beats: HeartBeats | None = None
        self._busy = False
        self._looping = False
        # The plain SENDs and ACKs of this read not yet handed to the
        # broker (see _join); and a frame read but not yet handled, which
        # waits behind them.
        self._joined: dict | None = None
        self._held_frame: Frame | None = None
        # SENDs, ACKs and NACKs still being stored, oldest first: a deque
        # once there is one (an empty deque is 600 bytes an idle session
        # need not hold).
        self._unconfirmed: deque[_Unconfirmed] | tuple = ()
        # Fires once few enough frames are being stored to read on.
        self._unconfirmed_room: Deferred | None = None
        # Fires when a queue an earlier SEND filled has room again, or a
        # topic subscriber it left far behind has caught up.
        self._room: Deferred | None = None
        # Fires when the client has read what waited for it (see room()).
        self._drained: Deferred | None = None
        self._reading_paused = False
        self._closing = False
        self._gone = False
        # What was written during this pause, for a transport that cannot
        # tell what waits in it to be sent (see ISessionTransport).
        self._paused_bytes = 0
        # A transport that takes a burst's frames together (plain TCP,
        # WebSocket) gets the frames written during a burst at its end (see
        # DispatchGate): kept here meanwhile, with whether a large body
        # (a tuple of parts) is among them. A flag, not the bound method:
        # an idle session need not hold one.
        self._takes_frames = hasattr(transport, "write_frames")
        self._out: list | None = None
        self._out_large = False
        self._connect_timer = self.clock.callLater(self.config.connect_timeout, self._connect_timed_out)
        self._abort_timer = None
        transport.registerProducer(self, True)
        self._registered = True
        refusal = broker.attach(self)
        if refusal is not None:
            # Over a connection limit: told before its CONNECT is read.
            self._fail(refusal)

    def __repr__(self) -> str:
        return f"<StompSession {self.session_id} user={self.user!r}>"

    # Input

    def data_received(self, data: bytes) -> None:
        """
        Bytes from the client.
        """
        if self._closing:
            return
        self.counts.received_bytes += len(data)
        if self._heart_beats is not None:
            self._heart_beats.received()
        try:
            self._parser.feed(data)
        except FrameError as e:
            self._fail(e)
            return
        self._process()

    def receive_buffer(self) -> memoryview | None:
        """
        Where the transport may receive the next bytes straight into, when a
        large body is arriving (see L{FrameParser.body_buffer}); then it
        calls L{received_into}, not L{data_received}.
        """
        if self._closing:
            return None
        return self._parser.body_buffer()

    def received_into(self, count: int) -> None:
        """
        The transport received C{count} bytes into L{receive_buffer}.
        """
        self.counts.received_bytes += count
        if self._heart_beats is not None:
            self._heart_beats.received()
        self._parser.body_filled(count)

    def _process(self) -> None:
        if self._looping:
            return
        self._looping = True
        gate = self.broker.dispatch_gate
        # Held from the first frame with more of the read behind it: a
        # read's only frame (every frame, at a low rate) has nothing to be
        # batched with, and what it makes the broker write goes out at once.
        holding = False
        try:
            while not self._busy and not self._closing:
                frame = self._held_frame
                if frame is not None:
                    self._held_frame = None
                else:
                    try:
                        frame = self._parser.next_frame()
                    except FrameError as e:
                        self._fail(e)
                        return
                    if frame is None:
                        break
                if self._joined is not None and not _joins(frame):
                    # The frames joined before it go first.
                    self._flush_joined()
                    if self._busy:
                        # Too many frames are being stored: it waits.
                        self._held_frame = frame
                        break
                if not holding and self._parser.buffered:
                    gate.hold()
                    holding = True
                self._dispatch(frame)
        finally:
            if self._joined is not None:
                self._flush_joined()
            self._looping = False
            # Queues the frames touched dispatch now, once each; that may
            # finish a frame of ours that waited for room in a queue.
            if holding:
                gate.release()
        if self._busy and not self._reading_paused and not self._closing:
            self._reading_paused = True
            self.transport.pauseProducing()

    def _dispatch(self, frame: Frame) -> None:
        """
        Run one frame's handler; its receipt or ERROR follows when its effect
        is done.
        """
        self._frames_in += 1
        handler = _HANDLERS.get(frame.command)
        # Unknown commands are counted under one name: a client must not
        # grow the metrics.
        command = frame.command if handler is not None else "unknown"
        counters = self._counters
        counters.frames_received[command] += 1
        counters.frame_bytes_received[command] += self._parser.frame_size
        self._busy = True
        try:
            if handler is None:
                raise ProtocolError(
                    "unknown command", f"{frame.command[:64]!r} is not a STOMP command this broker knows."
                )
            if self.version is None and frame.command not in _CONNECT_COMMANDS:
                raise ProtocolError("not connected", "The first frame must be CONNECT or STOMP.")
            # Most frames wait for nothing: one test, not a call, for them.
            waits = self._waits_before(frame) if self._room is not None or self._unconfirmed else None
            result = self._after(waits, handler, frame) if waits else handler(self, frame)
        except Exception:
            self._frame_done(Failure(), frame)
            return
        self._handled(result, frame)

    def _handled(self, result, frame: Frame) -> None:
        """
        Finish C{frame} once its handler's C{result} is done: at once for
        C{None}, else when its Deferred (or L{_Stored} waiter) fires.
        """
        if result is None:
            # Done already, as most frames are: tested first, since
            # isinstance with Deferred (an Awaitable) goes through ABCMeta.
            self._frame_done(None, frame)
        elif isinstance(result, _Stored):
            # Its RECEIPT, if asked, comes once it is stored (in order).
            if result.waiter is None:
                self._frame_done(None, frame, receipt=False)
            else:
                result.waiter.addBoth(self._frame_done, frame, False)
        elif isinstance(result, Deferred):
            result.addBoth(self._frame_done, frame)
        else:
            self._frame_done(None, frame)

    def _waits_before(self, frame: Frame) -> list[Deferred]:
        """
        What C{frame} must wait for before it is handled: room in a queue an
        earlier SEND filled, and, for a frame with a receipt other than a
        SEND, ACK or NACK (which confirms every frame before it), the
        frames still being stored.
        """
        waits = []
        room = self._room
        if room is not None:
            if room.called:
                self._room = None
            else:
                waits.append(room)
        if self._unconfirmed and "receipt" in frame.headers and frame.command not in _STORED_COMMANDS:
            waits.extend(entry.storing for entry in self._unconfirmed)
        return waits

    def _after(self, waits: list[Deferred], handler, frame: Frame) -> Deferred:
        def ready(_):
            if self._closing:
                return None
            return handler(self, frame)

        return DeferredList(waits).addCallback(ready)

    def _queue_full(self, room: Deferred) -> None:
        # A SEND filled a queue, or left a topic's subscriber far behind:
        # the next frame waits for room (in each, when several SENDs of one
        # read did).
        waiting = self._room
        self._room = room if waiting is None or waiting.called else DeferredList([waiting, room])

    def _stored_in_order(self, frame: Frame, storing: Deferred | None):
        """
        What a SEND, ACK or NACK handler returns: C{storing} (its store
        call) if that is done and nothing before it is still being stored;
        else a L{_Stored}: the next frame is read while it is stored, and
        its RECEIPT is sent once it and every frame before it are.
        """
        if not self._unconfirmed:
            if storing is None or storing.called:
                return storing
        elif storing is None:
            # Nothing to store (a frame of a transaction, a late ACK), but
            # its RECEIPT must not overtake those of the frames before it.
            storing = succeed(None)
        return self._go_on_while_stored(storing, frame)

    def _go_on_while_stored(self, storing: Deferred, frame: Frame) -> "_Stored":
        """
        Read the next frame while C{frame}'s effect is stored. The store
        keeps one session's calls in order; if storing fails, the client
        gets an ERROR and nothing after it is confirmed.
        """
        entry = _Unconfirmed(storing, frame.headers.get("receipt"))
        if not self._unconfirmed:
            self._unconfirmed = deque()
        self._unconfirmed.append(entry)
        storing.addBoth(self._unconfirmed_done, entry, frame)
        if len(self._unconfirmed) < MAX_UNCONFIRMED:
            return _READ_ON
        if self._unconfirmed_room is None:
            # (Already there when several groups of one read's SENDs and
            # ACKs are handed over together: they wait for the same room.)
            self._unconfirmed_room = Deferred()
        return _Stored(self._unconfirmed_room)

    def _unconfirmed_done(self, outcome, entry: "_Unconfirmed", frame: Frame) -> None:
        if isinstance(outcome, Failure):
            self._unconfirmed = ()
            if outcome.check(StompError):
                self._fail(outcome.value, frame)
            else:
                self.log.failure("Storing {command} failed", outcome, command=frame.command)
                self._fail(StompError("internal error", "The broker failed to store this frame."), frame)
            self._read_on_if_room()
            return
        entry.done = True
        unconfirmed = self._unconfirmed
        while unconfirmed and unconfirmed[0].done:
            receipt = unconfirmed.popleft().receipt
            if receipt is not None and not self._closing:
                self._send_frame(Frame("RECEIPT", {"receipt-id": receipt}))
        if self._unconfirmed_room is not None:
            self._read_on_if_room()

    def _read_on_if_room(self) -> None:
        room = self._unconfirmed_room
        if room is not None and len(self._unconfirmed) <= RESUME_UNCONFIRMED:
            self._unconfirmed_room = None
            room.callback(None)

    def _frame_done(self, outcome, frame: Frame, receipt: bool = True) -> None:
        self._busy = False
        if isinstance(outcome, Failure):
            if outcome.check(StompError):
                self._fail(outcome.value, frame)
            else:
                self.log.failure("Handling {command} failed", outcome, command=frame.command)
                self._fail(StompError("internal error", "The broker failed to handle this frame."), frame)
        elif receipt and not self._closing and frame.command not in _CONNECT_COMMANDS:
            receipt_id = frame.headers.get("receipt")
            if receipt_id is not None:
                self._send_frame(Frame("RECEIPT", {"receipt-id": receipt_id}))
        if not self._looping and not self._closing:
            if self._reading_paused:
                self._reading_paused = False
                if self._heart_beats is not None:
                    # We did not read meanwhile: the silence was ours.
                    self._heart_beats.received()
                self.transport.resumeProducing()
            self._process()

    # Output

    def _send_frame(self, frame: Frame) -> None:
        data = encode_frame(frame, self.version or "1.0")
        counters = self._counters
        counters.frames_sent[frame.command] += 1
        counters.frame_bytes_sent[frame.command] += len(data)
        self.counts.sent_bytes += len(data)
        self._write(data)
        if self._heart_beats is not None:
            self._heart_beats.sent()

    def _beat(self) -> None:
        self.counts.sent_bytes += 1
        self._write(b"\n")

    def _write(self, data: bytes) -> None:
        """
        Write bytes to the client; during a burst (L{DispatchGate}), kept
        for L{flush} at its end, if the transport takes a burst's frames
        together. Outside a burst such a transport sends them at once,
        rather than at the reactor's next turn.
        """
        out = self._out
        if out is not None:
            out.append(data)
        elif not self._takes_frames:
            self.transport.write(data)
        elif self.broker.dispatch_gate.batching:
            self._out = [data]
            self.broker.dispatch_gate.flush_later(self)
        else:
            self.transport.write_frames([data])

    def _write_sequence(self, parts: tuple) -> None:
        """
        Write one frame as its parts, a large body among them, which are
        never joined.
        """
        if self._out is None:
            self.transport.writeSequence(parts)
        else:
            self._out.append(parts)
            self._out_large = True

    def flush(self) -> None:
        """
        Write what was kept during a burst, the frames together (see
        L{ISessionTransport}); called by the L{DispatchGate} at its end.
        """
        out = self._out
        if out is None:
            return
        self._out = None
        if self._gone:
            return
        if self._out_large:
            # A large body among them (a tuple of parts) is never joined.
            self._out_large = False
            transport = self.transport
            for frame in out:
                if frame.__class__ is tuple:
                    transport.writeSequence(frame)
                else:
                    transport.write(frame)
        else:
            self.transport.write_frames(out)

    def deliver(self, subscription: Subscription, message) -> None:
        """
        Write a MESSAGE frame; see L{IDeliveryTarget.deliver}.
        """
        if self._closing:
            return
        version = self.version
        head = subscription.frame_prefix + message.delivery_lines(version == "1.2" and subscription.acks)
        if message.expires_at is not None or message.visible_at is not None:
            head += _deadline_lines(message)
        tail = message.encoded_tail(version)
        counts = self.counts
        if tail.__class__ is bytes:
            data = head + tail
            self._write(data)
            size = len(data)
        else:
            # A large body: written as it is, not copied into a frame.
            self._write_sequence((head, *tail))
            size = len(head) + len(tail[0]) + len(tail[1]) + 1
        counts.message_bytes += size
        if message.delivery_count > 1:
            counts.redelivered += 1
        else:
            counts.delivered += 1
        if self._heart_beats is not None:
            self._heart_beats.sent()
        if not self.writable:
            self._paused_bytes += size
            if self._waiting_bytes() > self.config.limits.max_buffered:
                self.log.warn("Disconnecting slow consumer {session}", session=self.session_id)
                self._fail(
                    StompError(
                        "slow consumer",
                        f"More than {self.config.limits.max_buffered} bytes of messages waited for this "
                        "connection to read them.",
                    )
                )

    def _waiting_bytes(self) -> int:
        """
        Bytes written to a paused transport that the client has not read:
        what waits in the transport, where it says (plain TCP); else what
        was written since it paused.
        """
        buffered_bytes = getattr(self.transport, "buffered_bytes", None)
        return self._paused_bytes if buffered_bytes is None else buffered_bytes()

    def room(self) -> Deferred | None:
        """
        Whether a topic's publisher should wait for this subscriber; see
        L{IDeliveryTarget.room}. It waits while more than half of C{[limits]
        max-buffered} waits to be read, until the client has read it all
        (L{resumeProducing}) or, once in each pause, for at most
        L{SUBSCRIBER_PATIENCE} seconds.
        """
        if self.writable or self._closing or self._waiting_bytes() <= self.config.limits.max_buffered // 2:
            return None
        drained = self._drained
        if drained is None:
            drained = self._drained = Deferred()
            # Patience spent, the Deferred has fired and stays: publishers
            # stop waiting for this client until it reads again.
            drained.addTimeout(SUBSCRIBER_PATIENCE, self.clock, onTimeoutCancel=lambda result, timeout: None)
        elif drained.called:
            return None
        return drained

    def _release_publishers(self) -> None:
        drained = self._drained
        if drained is not None:
            self._drained = None
            if not drained.called:
                drained.callback(None)

    def pauseProducing(self) -> None:
        """
        The transport's buffer is full: the client reads slower than we send.

        Twisted calls this on every write while the buffer stays full, so
        only the first call of a pause starts counting what waits.
        """
        if self.writable:
            self._paused_bytes = 0
        self.writable = False

    def resumeProducing(self) -> None:
        """
        The client caught up: queue messages may flow again.
        """
        if self._closing:
            return
        self.writable = True
        self._release_publishers()
        for subscription in list(self.subscriptions.values()):
            self.vhost.wake(subscription)

    def stopProducing(self) -> None:
        """
        The connection is going away; L{connection_lost} follows.
        """
        self.writable = False

    # Ending

    def _fail(self, error: StompError, frame: Frame | None = None) -> None:
        """
        Send an ERROR for C{error} and close the connection.
        """
        if self._closing:
            return
        self._close_reason = f"ERROR {error.message}"
        self._counters.errors[error.message] += 1
        headers = {"message": error.message, "content-type": "text/plain"}
        headers.update(error.headers)
        if frame is not None and "receipt" in frame.headers:
            headers["receipt-id"] = frame.headers["receipt"]
        body = error.detail.encode("utf-8")
        headers["content-length"] = str(len(body))
        self.log.info(
            "ERROR {message} to {peer}", message=error.message, peer=self.transport.getPeer()
        )
        self._send_frame(Frame("ERROR", headers, body))
        self._close()

    def _close(self) -> None:
        self._closing = True
        self.writable = False
        self._release_publishers()
        # What the client held goes to others now, not once the connection
        # is finally gone: a client that stopped reading (or died) may hold
        # it for close-timeout more.
        self._unsubscribe_all()
        if self._reading_paused:
            self._reading_paused = False
            self.transport.resumeProducing()
        # A transport whose producer is paused (a slow consumer) waits for it
        # to be unregistered before it closes, even once its buffer is sent.
        self._unregister()
        # What is kept for the end of the burst (the ERROR, say) goes first.
        self.flush()
        self.transport.loseConnection()
        # A client that does not read would hold its connection, and what
        # is buffered for it, for ever: give it a while to read, then cut.
        self._abort_timer = self.clock.callLater(self.config.close_timeout, self.transport.abortConnection)

    def _unregister(self) -> None:
        # Once only: some transports refuse a second unregisterProducer.
        if self._registered:
            self._registered = False
            self.transport.unregisterProducer()

    def shut_down(self, reason: str) -> None:
        """
        The broker is stopping: tell the client and close.
        """
        self._fail(StompError(reason, "The broker is stopping; reconnect later."))

    def close_by_administrator(self) -> None:
        """
        An administrator closed this connection (management API): tell the
        client why, and close.
        """
        self._fail(StompError("closed by an administrator", "An administrator of this broker closed the connection."))

    @property
    def closing(self) -> bool:
        """
        The session has ended (an ERROR, a DISCONNECT, an administrator, the
        client gone): its connection closes once the client has read what it
        was sent, or at close-timeout.
        """
        return self._closing

    @property
    def connected_at(self) -> float | None:
        """
        When CONNECT succeeded (the broker's clock), or C{None} before.
        """
        return self._connected_at

    def _connect_timed_out(self) -> None:
        self._connect_timer = None
        self._fail(StompError("connect timeout", "No CONNECT frame arrived in time."))

    def connection_lost(self) -> None:
        """
        The connection is closed: give back what the client held and forget
        the session.
        """
        if self._gone:
            return
        if self.version is not None:
            self.log.info(
                "DISCONNECTED {session} user={user} reason={reason} duration={duration:.1f}s frames={frames}",
                session=self.session_id,
                user=self.user,
                reason=self._close_reason,
                duration=self.clock.seconds() - self._connected_at,
                frames=self._frames_in,
            )
        self._gone = True
        self._closing = True
        self.writable = False
        self._release_publishers()
        for timer in (self._connect_timer, self._abort_timer):
            if timer is not None and timer.active():
                timer.cancel()
        if self._heart_beats is not None:
            self._heart_beats.stop()
        self._transactions = _NONE_YET
        self._unsubscribe_all()
        if self.vhost is not None:
            self._log_errors(self.vhost.end_session(self.session_id), "end session")
        self._unregister()
        self.broker.detach(self)

    def _unsubscribe_all(self) -> None:
        if self._joined is not None:
            # A frame of this read ends the session: the ACKs joined before
            # it settle deliveries their subscriptions no longer list, so
            # they go first, or those messages would stay in flight.
            self._flush_joined()
        if self.vhost is not None:
            for subscription in self.subscriptions.values():
                self._log_errors(self.vhost.unsubscribe(subscription), "unsubscribe")
        self.subscriptions = _NONE_YET

    def _log_errors(self, d: Deferred, what: str) -> None:
        d.addErrback(lambda f: self.log.failure("{what} for {session} failed", f, what=what, session=self.session_id))

    # Frame handlers: each returns None or a Deferred, raises StompError.

    def on_CONNECT(self, frame: Frame) -> Deferred:
        if self.version is not None:
            raise ProtocolError("already connected", "CONNECT was sent twice.")
        headers = frame.headers
        accepted = headers.get("accept-version")
        offered = {v.strip() for v in accepted.split(",")} if accepted else {"1.0"}
        common = [v for v in SUPPORTED_VERSIONS if v in offered]
        if not common:
            raise ProtocolError(
                "unsupported protocol version",
                f"This broker speaks STOMP {_SUPPORTED}; the client offered {accepted!r}.",
                {"version": _SUPPORTED},
            )
        version = common[-1]
        beats = negotiate(headers.get("heart-beat") if accepted else None, self.config.heart_beat)
        if self.oci_compat and not (headers.get("login") and headers.get("passcode")):
            raise ProtocolError("login required", "This listener needs login and passcode (an auth token).")
        self.vhost = self.broker.virtual_host(headers.get("host"))
        # ActiveMQ's name for the client across connections, which its
        # durable topic subscriptions are named by.
        self.client_id = headers.get("client-id") or None
        login = headers.get("login")
        certified = certificate_user(self.transport) if self.config.auth.tls_client_cert else None
        if certified is not None:
            # The CA vouched for this name: it needs no passcode.
            self.log.info("Client certificate of {user} from {peer}", user=certified, peer=self.transport.getPeer())
            return succeed(certified).addCallback(self._connected, version, beats, True)
        if login == GUEST and self.config.auth.guest_loopback_only and not _is_local(self.transport.getPeer()):
            self.log.info("Refused login 'guest' from {peer}: guest is for loopback only", peer=self.transport.getPeer())
            raise AuthenticationError(
                "bad credentials",
                "The user guest may connect only from this host ([auth] guest-loopback-only).",
            )
        authenticating = self.broker.authenticate(login, headers.get("passcode"), self.vhost.name)
        authenticating.addErrback(self._login_refused, login)
        return authenticating.addCallback(self._connected, version, beats, login is not None)

    on_STOMP = on_CONNECT

    def _login_refused(self, failure, login: str | None):
        self.log.info(
            "Refused login {login!r} from {peer}: {reason}",
            login=login,
            peer=self.transport.getPeer(),
            reason=failure.getErrorMessage(),
        )
        return failure

    def _connected(self, user: str, version: str, beats, authenticated: bool) -> None:
        if self._closing:
            return
        if self._connect_timer is not None and self._connect_timer.active():
            self._connect_timer.cancel()
        self._connect_timer = None
        # Many connections log in as one user: they share one string.
        user = sys.intern(str(user))
        self.user = user
        if authenticated:
            self._principal = user
            self.groups = self.broker.groups(user)
        self.version = version
        self._parser.version = version
        send_every, expect_every = beats
        self._send_frame(
            Frame(
                "CONNECTED",
                {
                    "version": version,
                    "heart-beat": f"{self.config.heart_beat.send},{self.config.heart_beat.receive}",
                    "session": self.session_id,
                    "server": f"{self.config.server_name}/{__version__}",
                },
            )
        )
        if send_every or expect_every:
            self._heart_beats = HeartBeats(
                self.clock,
                send_every / 1000.0,
                expect_every * self.heart_beat_grace / 1000.0,
                beat=self._beat,
                timed_out=self._heart_beat_timed_out,
            )
        self._connected_at = self.clock.seconds()
        self.log.info(
            "CONNECTED {session} user={user} vhost={vhost} version={version} transport={transport} peer={peer}",
            session=self.session_id,
            user=user,
            vhost=self.vhost.name,
            version=version,
            transport=self.kind,
            peer=_address(self.transport.getPeer()),
        )

    def _heart_beat_timed_out(self) -> None:
        if self._reading_paused:
            return
        self._fail(StompError("heart-beat timeout", "Nothing was received from the client within its heart-beat interval."))

    def _refuse_unless(self, allowed: bool, permission: str, destination: str) -> None:
        if not allowed:
            self.log.info(
                "Refused {permission} of {destination} to {user} from {peer}",
                permission=permission,
                destination=destination,
                user=self.user,
                peer=self.transport.getPeer(),
            )
            raise DestinationError(
                f"{permission} access to {destination} refused",
                f"User {self.user!r} may not {permission} {destination!r}.",
            )

    def _may(self, destination: str, permission: str) -> bool:
        return self.broker.authorization.allows(self._principal, self.groups, self.vhost.name, destination, permission)

    def on_SEND(self, frame: Frame):
        destination = _required(frame, "destination")
        if not self.broker.authorization.open:
            self._refuse_unless(self._may(destination, WRITE), WRITE, destination)
        if "transaction" in frame.headers:
            # Refused now rather than half way through its COMMIT.
            self.vhost.check_publish(self.session_id, frame.headers, self.oci_compat)
            if self._in_transaction(frame):
                return None
        if self._joining(frame):
            self.counts.published += 1
            self._join(destination, [(frame.headers, frame.body)], frame)
            return None
        return self._stored_in_order(frame, self._publish(frame))

    def _publish(self, frame: Frame) -> Deferred | None:
        headers = frame.headers
        reply_to = headers.get("reply-to")
        if reply_to is not None and reply_to.startswith(TEMP_QUEUE_PREFIX) and len(reply_to) > len(TEMP_QUEUE_PREFIX):
            name = reply_to[len(TEMP_QUEUE_PREFIX) :]
            self._open_reply_queue(reply_to)
            headers = dict(headers)
            headers["reply-to"] = reply_destination(self.session_id, name)
        self.counts.published += 1
        return self.vhost.publish(self.session_id, headers, frame.body, self.oci_compat, self._queue_full)

    def _open_reply_queue(self, destination: str) -> None:
        """
        Replies to C{/temp-queue/NAME} reach the client through a
        subscription with the queue's name as id, as RabbitMQ does, unless it
        subscribed to the queue itself.
        """
        if any(sub.destination == destination for sub in self.subscriptions.values()):
            return
        self._subscribe(destination, destination, AUTO, None)

    def on_SUBSCRIBE(self, frame: Frame) -> None:
        headers = frame.headers
        destination = _required(frame, "destination")
        subscription_id = headers.get("id")
        if subscription_id is None:
            if self.version != "1.0":
                raise ProtocolError("missing id header", "A SUBSCRIBE frame must have an 'id' header.")
            subscription_id = destination
        ack_mode = headers.get("ack", CLIENT_INDIVIDUAL if self.oci_compat else AUTO)
        if ack_mode not in ACK_MODES:
            raise ProtocolError("invalid ack mode", f"ack must be one of {', '.join(ACK_MODES)}, not {ack_mode!r}.")
        if self.oci_compat and ack_mode != CLIENT_INDIVIDUAL:
            raise ProtocolError("invalid ack mode", f"This listener supports only ack:client-individual, not {ack_mode!r}.")
        prefetch = _prefetch(headers, ack_mode, self.config.queues.default_prefetch)
        return self._subscribe(subscription_id, destination, ack_mode, prefetch, headers)

    def _read_check(self, route, destination: str, durable: bool):
        """
        Refuse a SUBSCRIBE the user may not make; for a wildcard
        subscription that may cover destinations the user may not read,
        the check its messages pass (else C{None}).
        """
        authorization = self.broker.authorization
        if authorization.open:
            return None
        wildcard = route.kind in (TOPIC, REMOTE) and is_pattern(destination)
        if not wildcard:
            self._refuse_unless(self._may(destination, READ), READ, destination)
            return None
        vhost = self.vhost.name
        if durable:
            # Its queue keeps what the pattern matches: all of it readable.
            allowed = authorization.may_read_all(self._principal, self.groups, vhost, destination)
            self._refuse_unless(allowed, READ, destination)
            return None
        self._refuse_unless(authorization.may_read_some(self._principal, self.groups, vhost, destination), READ, destination)
        return ReadCheck(authorization, self._principal, self.groups, vhost)

    def _durable_name(self, headers: dict, subscription_id: str) -> str | None:
        """
        The name of the durable topic subscription a SUBSCRIBE asks for, or
        C{None}: ActiveMQ's C{activemq.subscriptionName} (with CONNECT's
        C{client-id}), or RabbitMQ's C{durable:true} (and not
        C{auto-delete:true}), named by the subscription id.
        """
        name = headers.get("activemq.subscriptionName")
        if name is not None:
            if self.client_id is None:
                raise ProtocolError(
                    "client-id required",
                    "A durable subscription (activemq.subscriptionName) needs a client-id header on CONNECT.",
                )
            return f"{self.client_id}:{name}"
        if headers.get("durable") == "true" and headers.get("auto-delete") != "true":
            return f"{self.client_id or ''}:{subscription_id}"
        return None

    def _subscribe(
        self, subscription_id: str, destination: str, ack_mode: str, prefetch: int | None, headers: dict | None = None
    ) -> Deferred:
        if subscription_id in self.subscriptions:
            raise ProtocolError("duplicate subscription id", f"Subscription {subscription_id!r} already exists.")
        if len(self.subscriptions) >= self.config.max_subscriptions:
            raise ProtocolError(
                "too many subscriptions", f"A connection may hold {self.config.max_subscriptions} subscriptions."
            )
        route = self.vhost.route(destination, self.session_id, self.oci_compat)
        if route.owner is not None and route.owner != self.session_id:
            # A /reply-queue/ name is for sending replies; reading it would
            # steal another connection's replies.
            raise DestinationError(
                "access refused", f"{destination!r} is another connection's temporary queue: only SEND to it."
            )
        durable = None
        if route.kind == TOPIC and headers:
            name = self._durable_name(headers, subscription_id)
            if name is not None:
                durable = self.vhost.durable_route(route, name)
        read_check = self._read_check(route, destination, durable is not None)
        queue_route = durable or route
        policy = self.vhost.delivery_policy(queue_route, headers or {}) if queue_route.kind == QUEUE else DEFAULT_POLICY
        subscription = Subscription(
            self, subscription_id, destination, route, ack_mode, prefetch, self.version == "1.2", policy
        )
        subscription.durable = durable
        subscription.read_check = read_check
        subscription.frame_prefix = (
            b"MESSAGE\nsubscription:" + escape_header(subscription_id, self.version).encode("utf-8") + b"\n"
        )
        if self.subscriptions is _NONE_YET:
            self.subscriptions = {}
        self.subscriptions[subscription_id] = subscription
        return self.vhost.subscribe(subscription, headers)

    def on_UNSUBSCRIBE(self, frame: Frame) -> Deferred:
        headers = frame.headers
        subscription_id = headers.get("id")
        if subscription_id is None and self.version == "1.0":
            subscription_id = headers.get("destination")
        durable_name = headers.get("activemq.subscriptionName")
        if subscription_id is None and durable_name is None:
            raise ProtocolError("missing id header", "An UNSUBSCRIBE frame must have an 'id' header.")
        # Removing a durable subscription for good, as each broker spells it.
        forget = headers.get("durable") == "true" or durable_name is not None
        subscription = self.subscriptions.get(subscription_id)
        if subscription is None:
            if durable_name is not None and self.client_id is not None:
                # ActiveMQ: a later connection of the same client-id removes
                # a durable subscription that is not active.
                return self.vhost.forget_durable(self.vhost.durable_key(f"{self.client_id}:{durable_name}"))
            raise ProtocolError("unknown subscription", f"There is no subscription {subscription_id!r}.")
        del self.subscriptions[subscription_id]
        return self.vhost.unsubscribe(subscription, forget=forget)

    def on_ACK(self, frame: Frame):
        if self._joining(frame):
            ack_id = _required(frame, self._ack_header)
            subscription = self._holder(frame, ack_id)
            if subscription is not None:
                self.counts.acked += 1
                self._join(subscription, subscription.settle(ack_id), frame)
            return None
        return self._stored_in_order(frame, self._acknowledge(frame))

    def _joining(self, frame: Frame) -> bool:
        """
        Whether to join C{frame} (see L{_join}): a plain SEND or ACK while
        frames of a read are handled, when others were joined before it or
        more bytes of the read wait. The only frame of a read (every frame,
        at a low rate) is handled at once, which is quicker.
        """
        if not self._looping:
            return False
        if self._joined is not None:
            # The read loop hands over what was joined before any frame
            # that does not join (L{_process}): this one was found to.
            return True
        return self._parser.buffered and _joins(frame)

    def _join(self, key, items: list, frame: Frame) -> None:
        """
        Keep what a plain SEND or ACK of this read (see L{_joins}) asks of
        the broker, with the others of this read for the same destination
        (C{key}: its name) or subscription (C{key}: the subscription), to
        hand over together (L{_flush_joined}): one store call for a read's
        SENDs to a queue, or ACKs of a subscription, instead of one each.
        """
        joined = self._joined
        if joined is None:
            joined = self._joined = {}
        held = joined.get(key)
        if held is None:
            joined[key] = [items, frame]
        else:
            held[0] += items
            # The last frame stands for them all.
            held[1] = frame

    def _flush_joined(self) -> None:
        """
        Hand what L{_join} kept to the broker: before the next frame that
        is not joined is handled (so a frame with a receipt waits for
        them), and at the end of the read. Each group is then stored in
        order with the frames around it, as one frame would be; the
        session reads at most one read's frames ahead of the store per
        group in its window of L{MAX_UNCONFIRMED}.
        """
        joined, self._joined = self._joined, None
        for key, (items, frame) in joined.items():
            self._busy = True
            try:
                if frame.command == "ACK":
                    storing = self.vhost.settle(key, items, ACK)
                else:
                    storing = self.vhost.publish_many(self.session_id, items, self.oci_compat, self._queue_full)
                result = self._stored_in_order(frame, storing)
            except Exception:
                self._frame_done(Failure(), frame)
                continue
            self._handled(result, frame)

    def on_NACK(self, frame: Frame):
        return self._stored_in_order(frame, self._acknowledge(frame))

    @property
    def _ack_header(self) -> str:
        """
        The header an ACK or NACK names its message by in this version.
        """
        return "id" if self.version == "1.2" else "message-id"

    def _acknowledge(self, frame: Frame):
        ack_id = _required(frame, self._ack_header)
        if "transaction" in frame.headers:
            # Refused now rather than half way through its COMMIT.
            self._holder(frame, ack_id)
            if frame.command == "NACK":
                _nack_outcome(frame, self.clock)
        if self._in_transaction(frame):
            return None
        return self._settle(frame, ack_id)

    def _settle(self, frame: Frame, ack_id: str) -> Deferred | None:
        subscription = self._holder(frame, ack_id)
        if subscription is None:
            return None
        if frame.command == "ACK":
            action, visible_at = ACK, None
        else:
            action, visible_at = _nack_outcome(frame, self.clock)
        if action == ACK:
            self.counts.acked += 1
        else:
            self.counts.nacked += 1
        return self.vhost.settle(subscription, subscription.settle(ack_id), action, visible_at)

    def _holder(self, frame: Frame, ack_id: str) -> Subscription | None:
        """
        The subscription holding C{ack_id} unacknowledged, or C{None} for a
        late ACK or NACK: of a delivery whose visibility timeout ran out,
        which changes nothing and is not an error.

        @raise ProtocolError: none of this connection's subscriptions has
            or had it.
        """
        named = self.subscriptions.get(frame.headers.get("subscription"))
        candidates = (named,) if named is not None else self.subscriptions.values()
        for subscription in candidates:
            if ack_id in subscription.unacked:
                return subscription
        for subscription in candidates:
            if ack_id in subscription.lapsed:
                self.log.debug(
                    "Late {command} of {ack_id} from {session}: its visibility timeout ran out",
                    command=frame.command,
                    ack_id=ack_id,
                    session=self.session_id,
                )
                return None
        raise ProtocolError(
            "unknown message", f"{frame.command} of {ack_id!r}, which is not a message waiting for acknowledgement."
        )

    def _in_transaction(self, frame: Frame) -> bool:
        """
        If C{frame} belongs to a transaction, keep it for COMMIT.
        """
        name = frame.headers.get("transaction")
        if name is None:
            return False
        self._refuse_transactions_if_oci(frame)
        frames = self._transaction(name)
        if len(frames) >= self.config.queues.max_transaction_frames:
            raise ProtocolError(
                "transaction too large", f"A transaction may hold {self.config.queues.max_transaction_frames} frames."
            )
        self._transaction_bytes += len(frame.body)
        if self._transaction_bytes > self.config.limits.max_buffered:
            raise ProtocolError(
                "transaction too large", f"Open transactions may hold {self.config.limits.max_buffered} bytes."
            )
        frames.append(frame)
        return True

    def _transaction(self, name: str) -> list[Frame]:
        frames = self._transactions.get(name)
        if frames is None:
            raise ProtocolError("unknown transaction", f"Transaction {name!r} was not begun or is already over.")
        return frames

    def _refuse_transactions_if_oci(self, frame: Frame) -> None:
        if self.oci_compat:
            raise ProtocolError("transactions not supported", f"This listener does not support transactions ({frame.command}).")

    def on_BEGIN(self, frame: Frame) -> None:
        self._refuse_transactions_if_oci(frame)
        name = _required(frame, "transaction")
        if name in self._transactions:
            raise ProtocolError("transaction already begun", f"Transaction {name!r} is already open.")
        if len(self._transactions) >= self.config.max_transactions:
            raise ProtocolError("too many transactions", f"A connection may hold {self.config.max_transactions} open transactions.")
        if self._transactions is _NONE_YET:
            self._transactions = {}
        self._transactions[name] = []

    def on_COMMIT(self, frame: Frame) -> Deferred:
        self._refuse_transactions_if_oci(frame)
        frames = self._end_transaction(frame)
        # Its frames are a burst, as a read's are (L{_process}): queues
        # dispatch once, and what is written goes out together, when those
        # handled in this call are done.
        gate = self.broker.dispatch_gate
        gate.hold()
        try:
            return Deferred.fromCoroutine(self._commit(frames))
        finally:
            gate.release()

    async def _commit(self, frames: list[Frame]) -> None:
        self._check_settlements(frames)
        for frame in frames:
            if frame.command == "SEND":
                done = self._publish(frame)
            else:
                done = self._settle(frame, frame.headers[self._ack_header])
            if done is not None:
                await done

    def _check_settlements(self, frames: list[Frame]) -> None:
        """
        Refuse a COMMIT, before any of its frames takes effect, if one of
        its ACKs or NACKs names a message that is no longer pending or that
        an earlier one of them already covers.

        @raise ProtocolError: naming the message.
        """
        claimed = set()
        for frame in frames:
            if frame.command == "SEND":
                continue
            ack_id = frame.headers[self._ack_header]
            subscription = self._holder(frame, ack_id)
            if subscription is None:
                continue
            if ack_id in claimed:
                raise ProtocolError(
                    "unknown message", f"{frame.command} of {ack_id!r}, which this transaction already settles."
                )
            claimed.update(subscription.covered(ack_id))

    def on_ABORT(self, frame: Frame) -> None:
        self._refuse_transactions_if_oci(frame)
        self._end_transaction(frame)

    def _end_transaction(self, frame: Frame) -> list[Frame]:
        name = _required(frame, "transaction")
        frames = self._transaction(name)
        del self._transactions[name]
        self._transaction_bytes -= sum(len(f.body) for f in frames)
        return frames

    def on_DISCONNECT(self, frame: Frame) -> None:
        self._close_reason = "DISCONNECT"
        receipt = frame.headers.get("receipt")
        if receipt is not None:
            self._send_frame(Frame("RECEIPT", {"receipt-id": receipt}))
        self._close()


_HANDLERS = {
    name[3:]: function for name, function in vars(StompSession).items() if name.startswith("on_")
}
