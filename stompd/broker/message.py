"""
The broker's message: what a SEND carried, plus what the broker tracks about
it while it travels.
"""

import itertools
import os

from stompd.codec import escape_header

# JMS's default; SEND's priority header ranges over 0-9.
DEFAULT_PRIORITY = 4
MAX_PRIORITY = 9

# Bodies of this many bytes or more are written to clients as a part of
# their own (see Message.encoded_tail): copying one into a frame costs more
# than the extra write call.
LARGE_BODY = 64 * 1024

# The delivery-count (and redelivered) lines of MESSAGE frames for the
# common counts (0: a topic message, which has none), encoded once.
_COUNT_LINES = [b""] + [
    (b"redelivered:true\n" if count > 1 else b"") + b"delivery-count:%d\n" % count for count in range(1, 16)
]

# Headers that belong to one frame or one delivery, never to the message.
FRAME_ONLY_HEADERS = frozenset(
    {
        "receipt",
        "transaction",
        "content-length",
        "subscription",
        "message-id",
        "ack",
        "redelivered",
        "delivery-count",
        "expire-after",
        "visible-after",
    }
)


def _can_carry(name: str, value: str, version: str) -> bool:
    """
    Can a STOMP 1.0 or 1.1 MESSAGE carry this header, sent by a 1.1 or 1.2
    producer? 1.0 has no escapes: a newline, or a colon in the name, would
    let one client forge headers in another's frames. Neither escapes a CR,
    which a parser takes for part of a CRLF EOL at the end of a value. Such
    a header is left out of that version's frames.
    """
    if value.endswith("\r"):
        return False
    if version == "1.0":
        return "\n" not in value and "\n" not in name and ":" not in name
    return True


class MessageIds:
    """
    Makes message ids unique across every broker node sharing a store: a
    random node prefix and a counter.
    """

    def __init__(self, node: str | None = None) -> None:
        self.node = node or os.urandom(6).hex()
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self.node}-{next(self._counter)}"


class Message:
    """
    One message.

    @ivar id: unique id, sent to clients as C{message-id}.
    @ivar destination: the destination exactly as the producer wrote it; it is
        what subscribers see in MESSAGE frames.
    @ivar headers: the producer's headers that travel with the message,
        C{destination} first.
    @ivar body: the body bytes (a C{bytes}, or a C{bytearray} that nothing
        changes: see L{stompd.codec.frame.Frame.body}).
    @ivar delivery_count: how often it was written to a consumer; the store
        keeps it.
    @ivar expires_at: broker-clock time after which it is never delivered,
        or C{None}.
    @ivar visible_at: broker-clock time before which it is not delivered (a
        delayed message), or C{None}.
    @ivar priority: 0 (lowest) to 9; higher is delivered first.
    @ivar channel: the channel of its queue it was sent to, or C{None}.
    @ivar first_delivered_at: broker-clock time of its first delivery, or
        C{None}; the store keeps it, like L{last_delivered_at}.
    """

    __slots__ = (
        "id",
        "destination",
        "headers",
        "body",
        "delivery_count",
        "expires_at",
        "visible_at",
        "priority",
        "channel",
        "first_delivered_at",
        "last_delivered_at",
        "_encoded",
    )

    def __init__(
        self,
        id: str,
        destination: str,
        headers: dict[str, str],
        body: bytes,
        delivery_count: int = 0,
        expires_at: float | None = None,
        visible_at: float | None = None,
        priority: int = DEFAULT_PRIORITY,
        channel: str | None = None,
        first_delivered_at: float | None = None,
        last_delivered_at: float | None = None,
    ) -> None:
        self.id = id
        self.destination = destination
        self.headers = headers
        self.body = body
        self.delivery_count = delivery_count
        self.expires_at = expires_at
        self.visible_at = visible_at
        self.priority = priority
        self.channel = channel
        self.first_delivered_at = first_delivered_at
        self.last_delivered_at = last_delivered_at
        # protocol version -> encoded tail; "ack" -> a topic message's ack
        # line. Made at the first delivery: a waiting message needs none.
        self._encoded: dict | None = None

    def __repr__(self) -> str:
        return f"<Message {self.id} to {self.destination!r}, {len(self.body)} bytes>"

    def copy(self) -> "Message":
        """
        The same message for another queue (a durable subscription's): its
        deliveries are counted there, so it must not share this object.
        """
        return Message(
            self.id,
            self.destination,
            self.headers,
            self.body,
            self.delivery_count,
            self.expires_at,
            self.visible_at,
            self.priority,
            self.channel,
            self.first_delivered_at,
            self.last_delivered_at,
        )

    def ack_id(self) -> str:
        """
        The STOMP 1.2 C{ack} id of this message's current delivery: its id
        on the first delivery, and the id with the delivery count after it
        on later ones, so that a late ACK of an earlier delivery is told
        apart from one of the current delivery.
        """
        count = self.delivery_count
        return self.id if count <= 1 else f"{self.id}.{count}"

    def delivery_lines(self, ack: bool) -> bytes:
        """
        The header lines of a MESSAGE frame that belong to the current
        delivery of this message: C{ack} (if C{ack}: STOMP 1.2, a client-ack
        subscription), and for a queue message (one with a delivery count)
        C{delivery-count} and, from the second delivery,
        C{redelivered:true}.
        """
        count = self.delivery_count
        lines = _COUNT_LINES[count] if count < len(_COUNT_LINES) else b"redelivered:true\ndelivery-count:%d\n" % count
        if not ack:
            return lines
        if not count:
            # A topic message, written to every subscriber: encoded once.
            encoded = self._encoded
            if encoded is None:
                encoded = self._encoded = {}
            line = encoded.get("ack")
            if line is None:
                line = encoded["ack"] = b"ack:" + escape_header(self.id, "1.2").encode("utf-8") + b"\n"
            return line
        return b"ack:" + escape_header(self.ack_id(), "1.2").encode("utf-8") + b"\n" + lines

    def encoded_tail(self, version: str) -> bytes | tuple[bytes, bytes, bytes]:
        """
        The part of a MESSAGE frame shared by every delivery of this message:
        the C{message-id} line, the message's headers, C{content-length}, the
        blank line, the body and the terminating NUL. One C{bytes}; but for
        a body of L{LARGE_BODY} bytes or more, the three parts (the lines,
        the body, the NUL), to be written as a sequence, so that the body is
        never copied into a frame.

        Encoded once per protocol version and cached, because a topic message
        is written to every subscriber.
        """
        encoded = self._encoded
        if encoded is None:
            encoded = self._encoded = {}
        tail = encoded.get(version)
        if tail is None:
            lines = [f"message-id:{escape_header(self.id, version)}"]
            for name, value in self.headers.items():
                if version != "1.2" and not _can_carry(name, value, version):
                    continue
                lines.append(f"{escape_header(name, version)}:{escape_header(value, version)}")
            lines.append(f"content-length:{len(self.body)}\n\n")
            head = "\n".join(lines).encode("utf-8")
            if len(self.body) >= LARGE_BODY:
                tail = (head, self.body, b"\x00")
            else:
                tail = head + self.body + b"\x00"
            encoded[version] = tail
        return tail


# Headers that ask for expiry: a dead letter never expires, and one sent back
# from a dead-letter queue must not expire at once for an old deadline.
_EXPIRY_HEADERS = ("expires", "expiration", "ttl")


def dead_letter_of(message: Message, destination: str, reason: str) -> Message:
    """
    The copy of C{message} that goes to the dead-letter queue
    C{destination}: a new message (its id derived from the original's, its
    deliveries counted anew) with the original's body, priority, channel and
    headers, and headers saying where it came from and why it died. It
    never expires.

    Every store builds its dead letters with this, so that they look the
    same whatever the store.
    """
    headers = {name: value for name, value in message.headers.items() if name not in _EXPIRY_HEADERS}
    headers["destination"] = destination
    headers["original-destination"] = message.destination
    headers["original-message-id"] = message.id
    headers["dead-letter-reason"] = reason
    headers["original-delivery-count"] = str(message.delivery_count)
    if message.first_delivered_at is not None:
        headers["first-delivered-at"] = str(int(message.first_delivered_at * 1000))
        headers["last-delivered-at"] = str(int(message.last_delivered_at * 1000))
    return Message(
        f"{message.id}-dl",
        destination,
        headers,
        message.body,
        priority=message.priority,
        channel=message.channel,
    )
