"""
Header escaping, as defined by STOMP 1.1 and 1.2.

STOMP 1.0 has no escaping. STOMP 1.1 escapes a newline as C{\\n}, a colon as
C{\\c} and a backslash as C{\\\\}; STOMP 1.2 also escapes a carriage return
as C{\\r}. Any other backslash sequence is an error.

CONNECT and CONNECTED frames are never escaped, whatever the version: the
version is not agreed yet when they are sent. Callers handle that; these
functions only know about versions.
"""

import re
from collections.abc import Callable

from stompd.errors import FrameError

_UNESCAPES = {
    "1.1": {"n": "\n", "c": ":", "\\": "\\"},
    "1.2": {"n": "\n", "c": ":", "\\": "\\", "r": "\r"},
}

# A backslash and the character after it; at the end of the string the
# group is empty, which makes a lone trailing backslash an undefined escape.
_ESCAPE_SEQUENCE = re.compile(r"\\(.?)", re.DOTALL)

# Long enough for a client to recognise its header in an error body.
_DETAIL_CHARS = 64


def escape_header(value: str, version: str) -> str:
    """
    Escape a header name or value for a frame of the given STOMP version.

    Called by the encoder for every header of every frame except CONNECT and
    CONNECTED, so the common case (nothing to escape) returns C{value} itself.

    @param value: the header name or value.
    @param version: C{"1.0"}, C{"1.1"} or C{"1.2"}.
    @return: the escaped text. For 1.0 this is C{value} unchanged, even when
        it cannot be represented; the encoder checks that.
    @raise ValueError: C{version} is not a supported version.
    """
    if version == "1.2":
        # Several substring tests are much faster than a translate() call
        # on the short strings that headers are.
        if "\\" in value or "\n" in value or ":" in value or "\r" in value:
            # Backslashes first, so the escapes added next are not doubled.
            return (
                value.replace("\\", "\\\\")
                .replace("\n", "\\n")
                .replace(":", "\\c")
                .replace("\r", "\\r")
            )
        return value
    if version == "1.1":
        if "\\" in value or "\n" in value or ":" in value:
            return value.replace("\\", "\\\\").replace("\n", "\\n").replace(":", "\\c")
        return value
    if version == "1.0":
        return value
    raise ValueError(f"unsupported STOMP version {version!r}")


def unescape_header(raw: str, version: str) -> str:
    """
    Undo L{escape_header}: turn a header name or value read from a frame of
    the given STOMP version back into its text.

    @param raw: the header name or value as it was on the wire.
    @param version: C{"1.0"}, C{"1.1"} or C{"1.2"}.
    @return: the unescaped text; C{raw} itself when it has no backslash or
        the version is 1.0.
    @raise FrameError: C{raw} holds an escape sequence the version does not
        define, or ends with a lone backslash.
    @raise ValueError: C{version} is not a supported version.
    """
    if "\\" not in raw or version == "1.0":
        return raw
    try:
        replace = _REPLACERS[version]
    except KeyError:
        raise ValueError(f"unsupported STOMP version {version!r}") from None
    return _ESCAPE_SEQUENCE.sub(replace, raw)


def _make_replacer(version: str) -> Callable[["re.Match[str]"], str]:
    table = _UNESCAPES[version]
    defined = " ".join("\\" + char for char in table)

    def replace(match: "re.Match[str]") -> str:
        try:
            return table[match.group(1)]
        except KeyError:
            pass
        raw = match.string
        shown = raw if len(raw) <= _DETAIL_CHARS else raw[:_DETAIL_CHARS] + "..."
        if match.group(1):
            problem = f"undefined escape sequence {match.group(0)!r}"
        else:
            problem = "a backslash at the end"
        raise FrameError(
            "invalid header escape",
            f"header text {shown!r} has {problem}; STOMP {version} defines "
            f"only {defined}",
        )

    return replace


_REPLACERS = {version: _make_replacer(version) for version in _UNESCAPES}
