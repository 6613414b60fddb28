"""
An in-memory harness: a broker on a fake clock and clients whose sessions
write to Twisted's C{StringTransport}. Fast, deterministic, no sockets.
"""

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from zope.interface import implementer

from stompd.auth import UsersAuthenticator
from stompd.broker.service import BrokerService
from stompd.codec import Frame, FrameParser, encode_frame
from stompd.config import Config
from stompd.interfaces import IConnector
from stompd.session import StompSession
from stompd.storage.memory import MemoryStore


# Where fake clients connect from: this host, since guest may log in only
# from loopback by default.
LOCAL_PEER = IPv4Address("TCP", "127.0.0.1", 40000)


class SlowCall:
    """
    A call to a L{SlowStore} not yet answered: on C{queue}, with C{items}
    (the messages, or the deliveries), what the memory store answered
    (C{result}), and the Deferred the caller waits on (C{answered}).
    """

    def __init__(self, queue: str, items: list, result) -> None:
        self.queue = queue
        self.items = items
        self.result = result
        self.answered = Deferred()


class SlowStore(MemoryStore):
    """
    A memory store that does at once what it is asked, but answers the
    calls named in C{slow} (C{"enqueue"}, C{"ack"}) only when the test says
    so, as a store over the network answers later: they wait in
    C{pending}, oldest first.
    """

    def __init__(self, slow: tuple[str, ...] = ("enqueue",)) -> None:
        super().__init__()
        self.slow = slow
        self.pending: list[SlowCall] = []

    def enqueue(self, queue, messages):
        return self._held("enqueue", queue, messages, super().enqueue(queue, messages))

    def ack(self, queue, deliveries):
        return self._held("ack", queue, deliveries, super().ack(queue, deliveries))

    def _held(self, operation: str, queue: str, items, result):
        if operation not in self.slow:
            return result
        call = SlowCall(queue, list(items), result)
        self.pending.append(call)
        return call.answered

    def answer(self, failure: Exception | None = None, index: int = 0) -> None:
        """
        Answer the call at C{index} of C{pending}: as the memory store did,
        or with C{failure}.
        """
        call = self.pending.pop(index)
        if failure is not None:
            call.answered.errback(failure)
        else:
            call.result.addCallback(call.answered.callback)

    def answer_all(self) -> None:
        while self.pending:
            self.answer()


def make_broker(config: Config | None = None, store=None, clock: Clock | None = None, connectors=()) -> BrokerService:
    """
    A broker with the memory store (or C{store}), guest/guest and
    C{connectors}, on a C{Clock}, reachable as C{broker.clock}.
    """
    config = config or Config()
    clock = clock or Clock()
    authenticator = UsersAuthenticator(clock, {}, guest=config.auth.guest, anonymous=config.auth.anonymous)
    return BrokerService(config, store or MemoryStore(), authenticator, clock, connectors)


def connected_client(broker: BrokerService, **connect_headers: str) -> "FakeClient":
    """
    A L{FakeClient} of C{broker} that has sent CONNECT (as guest, with
    C{connect_headers}) and read its CONNECTED.
    """
    client = FakeClient(broker)
    client.connect(**connect_headers)
    return client


class FakeClient:
    """
    A client of C{broker} whose frames go straight into a session.

    @ivar transport: the session's C{StringTransport}; its
        C{producerState} shows whether the session paused reading.
    """

    def __init__(self, broker: BrokerService, version: str = "1.2", transport=None, **session_options) -> None:
        """
        @param transport: the session's transport, a C{StringTransport} (or
            a subclass) made here if not given.
        @param session_options: passed on to L{StompSession}
            (C{heart_beat_grace}, C{oci_compat}).
        """
        self.broker = broker
        self.version = version
        self.transport = transport or StringTransport(peerAddress=LOCAL_PEER)
        self.session = StompSession(broker, self.transport, **session_options)
        self._parser = FrameParser(broker.config.limits.frames)
        self._parser.version = version

    def send_bytes(self, data: bytes) -> None:
        self.session.data_received(data)

    def send(self, command: str, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        self.send_bytes(encode_frame(Frame(command, headers or {}, body), self.version))

    def connect(self, **headers: str) -> Frame:
        """
        CONNECT as guest and return the CONNECTED frame.
        """
        headers = {"accept-version": self.version, "login": "guest", "passcode": "guest", **headers}
        self.send("CONNECT", headers)
        [connected] = self.frames()
        assert connected.command == "CONNECTED", connected
        return connected

    def received(self) -> bytes:
        """
        The bytes written to the client since the last call.
        """
        data = self.transport.value()
        self.transport.clear()
        return data

    def frames(self) -> list[Frame]:
        """
        The frames written to the client since the last call.
        """
        self._parser.feed(self.received())
        frames = []
        while (frame := self._parser.next_frame()) is not None:
            frames.append(frame)
        return frames

    def disconnect(self) -> None:
        """
        The connection drops.
        """
        self.session.connection_lost()

    @property
    def closed(self) -> bool:
        return self.transport.disconnecting


@implementer(IConnector)
class RecordingConnector:
    """
    A connector that records what the broker hands it; what its calls
    return is set by the test.
    """

    def __init__(self, name="up", prefixes=("/queue/ext.", "/exchange/"), relays_subscriptions=True) -> None:
        self.name = name
        self.prefixes = prefixes
        self.relays_subscriptions = relays_subscriptions
        self.calls: list = []
        self.sent = succeed(None)
        self.broker = None
        self.subscriptions: list = []

    def start(self, broker):
        self.calls.append("start")
        self.broker = broker
        return succeed(None)

    def stop(self):
        self.calls.append("stop")
        return succeed(None)

    def upstreams_connected(self):
        return 0

    def backlog(self):
        return 0

    def send(self, vhost, headers, body, producer):
        self.calls.append(("send", vhost, headers["destination"], body))
        return self.sent

    def subscribe(self, subscription):
        self.subscriptions.append(subscription)
        self.calls.append(("subscribe", subscription.destination))
        return succeed(None)

    def unsubscribe(self, subscription):
        self.calls.append(("unsubscribe", subscription.destination))
        return succeed(None)

    def settle(self, subscription, upstream_ids, action):
        self.calls.append(("settle", upstream_ids, action))
        return succeed(None)
