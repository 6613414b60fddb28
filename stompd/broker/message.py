"""
The broker's message: what a SEND carried, plus what the broker tracks about
it while it travels.
"""

import itertools
import os

from stompd.codec import escape_header

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
    @ivar body: the body bytes.
    @ivar delivery_count: how often it was handed to a consumer; the store
        increments it.
    @ivar expires_at: broker-clock time after which it is dropped, or C{None}.
    """

    __slots__ = ("id", "destination", "headers", "body", "delivery_count", "expires_at", "_encoded")

    def __init__(
        self,
        id: str,
        destination: str,
        headers: dict[str, str],
        body: bytes,
        delivery_count: int = 0,
        expires_at: float | None = None,
    ) -> None:
        self.id = id
        self.destination = destination
        self.headers = headers
        self.body = body
        self.delivery_count = delivery_count
        self.expires_at = expires_at
        self._encoded: dict[str, bytes] = {}

    def __repr__(self) -> str:
        return f"<Message {self.id} to {self.destination!r}, {len(self.body)} bytes>"

    def ack_line(self) -> bytes:
        """
        The C{ack} header line (only STOMP 1.2 has one) of a MESSAGE for this
        message, whose ack id is its id; cached like L{encoded_tail}.
        """
        line = self._encoded.get("ack")
        if line is None:
            line = self._encoded["ack"] = b"ack:" + escape_header(self.id, "1.2").encode("utf-8") + b"\n"
        return line

    def encoded_tail(self, version: str) -> bytes:
        """
        The part of a MESSAGE frame shared by every delivery of this message:
        the C{message-id} line, the message's headers, C{content-length}, the
        blank line, the body and the terminating NUL.

        Encoded once per protocol version and cached, because a topic message
        is written to every subscriber.
        """
        tail = self._encoded.get(version)
        if tail is None:
            lines = [f"message-id:{escape_header(self.id, version)}"]
            for name, value in self.headers.items():
                if version != "1.2" and not _can_carry(name, value, version):
                    continue
                lines.append(f"{escape_header(name, version)}:{escape_header(value, version)}")
            lines.append(f"content-length:{len(self.body)}\n\n")
            tail = "\n".join(lines).encode("utf-8") + self.body + b"\x00"
            self._encoded[version] = tail
        return tail
