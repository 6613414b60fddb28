"""
Turn a L{Frame} into bytes for the wire: the inverse of the parser.
"""

from stompd.codec.escaping import escape_header
from stompd.codec.frame import SUPPORTED_VERSIONS, Frame

# Commands whose headers are never escaped: the version is agreed by them.
_UNESCAPED_COMMANDS = frozenset({"CONNECT", "CONNECTED"})

# Commands already checked by _check_command. Bounded, so that odd commands
# cannot grow it without limit.
_checked_commands: set[str] = set()
_MAX_CHECKED_COMMANDS = 64


def encode_frame(frame: Frame, version: str) -> bytes:
    """
    Encode a frame for a connection speaking the given STOMP version.

    The result is C{COMMAND\\n}, then C{name:value\\n} for each header in
    order, a blank line, the body and a NUL octet. Names and values are
    escaped as the version requires, except in CONNECT and CONNECTED frames,
    which are never escaped. Parsing the result with the same version gives
    back an equal frame.

    No content-length header is added: callers add one where they want it.

    @param frame: the frame to encode; it is not changed.
    @param version: C{"1.0"}, C{"1.1"} or C{"1.2"}.
    @raise ValueError: the frame cannot be represented: the body holds a NUL
        but there is no content-length header, the content-length header does
        not match the body, the command is not printable ASCII, or a header
        name or value holds a character that the version cannot carry (such
        as a newline in a STOMP 1.0 value or in any CONNECT header).
    """
    command = frame.command
    headers = frame.headers
    body = frame.body
    if command not in _checked_commands:
        _check_command(command)
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(f"unsupported STOMP version {version!r}")

    if headers:
        length = headers.get("content-length")
        if length is not None:
            if length != str(len(body)) and not (
                length.isascii() and length.isdigit() and int(length) == len(body)
            ):
                raise ValueError(
                    f"content-length {length!r} does not match the "
                    f"{len(body)}-byte body"
                )
        elif b"\x00" in body:
            raise ValueError("a body holding a NUL octet needs a content-length header")

        # Join everything first, then look for characters needing care in the
        # joined text: a few C-level scans instead of per-header calls.
        text = "\n".join(map(":".join, headers.items()))
        count = len(headers)
        plain = (
            text.count("\n") == count - 1
            and text.count(":") == count
            and "\\" not in text
            and "\r" not in text
            and "\x00" not in text
        )
        if not plain:
            if command in _UNESCAPED_COMMANDS:
                text = _join_raw(headers, f"a {command} frame")
            elif version == "1.0":
                text = _join_raw(headers, "STOMP 1.0")
            else:
                text = _join_escaped(headers, version)
        head = f"{command}\n{text}\n\n".encode()
    else:
        if b"\x00" in body:
            raise ValueError("a body holding a NUL octet needs a content-length header")
        head = f"{command}\n\n".encode()
    return b"".join((head, body, b"\x00"))


def _check_command(command: str) -> None:
    if not command or not (command.isascii() and command.isprintable()) or " " in command:
        raise ValueError(
            f"a command must be non-empty printable ASCII without spaces, not {command!r}"
        )
    if len(_checked_commands) < _MAX_CHECKED_COMMANDS:
        _checked_commands.add(command)


def _join_raw(headers: dict[str, str], where: str) -> str:
    """
    Join headers that are sent without escaping, refusing any that the parser
    would read back differently.
    """
    for name, value in headers.items():
        if "\n" in name or ":" in name or "\x00" in name:
            raise ValueError(
                f"header name {name!r} cannot be sent in {where}: it holds a "
                "newline, colon or NUL octet"
            )
        if "\n" in value or "\x00" in value:
            raise ValueError(
                f"header {name!r} cannot be sent in {where}: its value holds a "
                "newline or NUL octet"
            )
        if value.endswith("\r"):
            raise ValueError(_TRAILING_CR.format(name=name, where=where))
    return "\n".join(map(":".join, headers.items()))


def _join_escaped(headers: dict[str, str], version: str) -> str:
    """
    Join headers with their names and values escaped for STOMP 1.1 or 1.2.
    """
    lines = []
    for name, value in headers.items():
        if "\x00" in name or "\x00" in value:
            raise ValueError(f"header {name!r} cannot hold a NUL octet")
        # STOMP 1.1 has no escape for CR.
        if version == "1.1" and value.endswith("\r"):
            raise ValueError(_TRAILING_CR.format(name=name, where="STOMP 1.1"))
        lines.append(f"{escape_header(name, version)}:{escape_header(value, version)}")
    return "\n".join(lines)


# The parser takes a CR just before a line's LF as part of a CRLF EOL.
_TRAILING_CR = "header {name!r} cannot end with a carriage return in {where}"
