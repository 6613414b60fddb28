"""
The in-memory form of one STOMP frame.
"""

SUPPORTED_VERSIONS = ("1.0", "1.1", "1.2")

# Beyond this many bytes, repr() shows only the start of a body: frames are
# logged and shown in test failures, and bodies can be megabytes.
_REPR_BODY_BYTES = 64

# repr() never shows these values, so a logged CONNECT frame leaks nothing.
_SECRET_HEADERS = frozenset({"passcode"})


class Frame:
    """
    One STOMP frame: a command, its headers and a body.

    Frames are mutable and cheap; the parser makes a new one for each frame it
    reads and the encoder only reads them.

    @ivar command: the command, e.g. C{"SEND"}, exactly as it was on the wire.
    @ivar headers: the headers, in wire order, unescaped. When a header was
        repeated on the wire, only its first value is here. The dict is
        used as given, not copied.
    @ivar body: the body bytes, without the terminating NUL: a C{bytes}, or,
        for a large body the parser received in place, the C{bytearray} it
        was received into, which nothing changes after (copying it into a
        C{bytes} would cost as much as receiving it).
    """

    __slots__ = ("command", "headers", "body")

    def __init__(
        self,
        command: str,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> None:
        self.command = command
        self.headers = {} if headers is None else headers
        self.body = body

    def __eq__(self, other: object) -> bool:
        """
        Frames are equal when their commands, headers and bodies are equal.
        Header order does not matter, as for any dict.
        """
        if not isinstance(other, Frame):
            return NotImplemented
        return (
            self.command == other.command
            and self.body == other.body
            and self.headers == other.headers
        )

    # Frames are mutable, so they must not be hashable.
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        headers = {
            name: ("***" if name in _SECRET_HEADERS else value)
            for name, value in self.headers.items()
        }
        body = self.body
        if len(body) > _REPR_BODY_BYTES:
            body_text = f"{bytes(body[:_REPR_BODY_BYTES])!r}... ({len(body)} bytes)"
        else:
            body_text = repr(body)
        return f"Frame({self.command!r}, {headers!r}, {body_text})"
