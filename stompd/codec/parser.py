"""
An incremental STOMP frame parser.

The parser knows nothing about connections: a transport feeds it whatever
bytes arrived and pulls out the frames that are complete. It is the broker's
hot path, so the work per frame is a handful of C-level searches and slices,
never a Python loop over bytes.
"""

import ctypes
import functools
import re
import sys
from itertools import islice
from typing import NoReturn

from stompd.codec.escaping import unescape_header
from stompd.codec.frame import SUPPORTED_VERSIONS, Frame
from stompd.codec.limits import Limits
from stompd.errors import FrameError

# The end of the header block: the EOL of the last line before the blank line,
# then the blank line. Both EOLs may be CRLF; the CR of the first is part of
# the header block and is stripped with its line. The pattern starts with a
# literal, which lets the regex engine skip ahead quickly.
_HEADER_END = re.compile(rb"\n\r?\n")

# EOLs sent between frames as heart-beats. A lone CR is not one: the command
# check rejects it. The possessive form (Python 3.11+) keeps a flood of EOLs
# from backtracking: on a megabyte of LFs it measured 100 times faster than
# (?:\r?\n)*.
_HEART_BEATS = re.compile(rb"(?:\n++|\r\n)*+")

# Commands whose headers are never escaped: the version is agreed by them.
_UNESCAPED_COMMANDS = frozenset({"CONNECT", "CONNECTED"})

# Commands already found valid. Bounded, so that a client sending many odd
# commands cannot grow it without limit.
_valid_commands: set[str] = set()
_MAX_VALID_COMMANDS = 64

_LF = 10
_CR = 13

# A shared default is safe: Limits is frozen.
_DEFAULT_LIMITS = Limits()

# A body with at least this many bytes still to come (content-length says
# so, or this much was searched for its NUL) goes to a buffer of its own:
# received straight into it when its length is known, instead of growing
# the stream buffer (and copying it as it grows) until the body is all there.
_BODY_IN_PLACE_FROM = 64 * 1024


if sys.implementation.name == "cpython":
    # The C API's constructor, given no bytes to copy, leaves the buffer's
    # bytes as they were (a prototype of our own: pythonapi's function
    # object is shared by everyone in the process).
    _uncleared_bytearray = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_void_p, ctypes.c_ssize_t)(
        ("PyByteArray_FromStringAndSize", ctypes.pythonapi)
    )

    def _new_body(length: int) -> bytearray:
        """
        A buffer of C{length} bytes for a body to be received into, its
        bytes not cleared first, as C{bytearray(length)} clears them, a
        megabyte at a time for a 1 MiB body: nothing reads them before they
        are received, a body received in place being handed out only once
        all C{length} bytes of it have come.
        """
        return _uncleared_bytearray(None, length)

else:
    _new_body = bytearray


class FrameParser:
    """
    Turn a byte stream into L{Frame}s, one connection at a time.

    The session calls L{feed} with each chunk it receives, then calls
    L{next_frame} until it returns C{None}. It may stop pulling frames for a
    while, and may change L{version} between two calls: the parser never
    decodes more than the frame it returns.

    Heart-beat EOLs between frames are skipped. After a L{FrameError} the
    stream cannot be trusted any more: every later call raises the same error.

    @ivar limits: the L{Limits} this parser enforces.
    @ivar frame_size: how many bytes the frame L{next_frame} returned last
        took on the wire, heart-beats before it excluded (for the metrics).
    """

    # One parser per connection, many idle connections: slots, not a dict.
    __slots__ = (
        "_body",
        "_body_head",
        "_body_length",
        "_body_received",
        "_body_scanned",
        "_body_view",
        "_buffer",
        "_error",
        "_head_line_start",
        "_head_lines",
        "_head_scanned",
        "_max_body_size",
        "_max_frame_size",
        "_max_head",
        "_pending",
        "_start",
        "_version",
        "frame_size",
        "limits",
    )

    def __init__(self, limits: Limits = _DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.frame_size = 0
        self._version = "1.0"
        # The bytes fed and not yet returned as frames, from self._start:
        # the chunk last fed while nothing else waits, else a bytearray.
        self._buffer: bytes | bytearray = b""
        # Where the unreturned bytes start. Consumed bytes are dropped once
        # per chunk (in feed(), or when all are consumed), not per frame.
        self._start = 0
        self._error: FrameError | None = None
        self._max_frame_size = limits.max_frame_size
        self._max_body_size = limits.max_body_size

        self._max_head = _max_head(limits)

        # Progress through an incomplete header block, relative to
        # self._start, so that each feed() only scans the new bytes.
        self._head_scanned = 0
        self._head_lines = 0
        self._head_line_start = 0

        # A frame whose header block is parsed but whose body is incomplete:
        # (command, headers, the version they were unescaped with, the ends of
        # the header block and of the blank line relative to self._start, and
        # the content-length or None).
        self._pending: tuple[str, dict[str, str], str, int, int, int | None] | None = None
        # How much of a body without content-length was searched for its NUL.
        self._body_scanned = 0
        # A large body being received in place: its buffer (of its length,
        # and a view of it, if content-length gave one), how many bytes of
        # how many arrived, and the frame's header block (what was before
        # the body in the stream buffer, which moves on meanwhile).
        self._body: bytearray | None = None
        self._body_view: memoryview | None = None
        self._body_received = 0
        self._body_length: int | None = 0
        self._body_head = b""

    @property
    def version(self) -> str:
        """
        The STOMP version (C{"1.0"}, C{"1.1"} or C{"1.2"}) that decides how
        header names and values are unescaped. The session sets it once
        CONNECT has been negotiated; frames returned afterwards, including
        ones already buffered, are decoded with it.
        """
        return self._version

    @version.setter
    def version(self, version: str) -> None:
        if version not in SUPPORTED_VERSIONS:
            raise ValueError(f"unsupported STOMP version {version!r}")
        self._version = version

    @property
    def buffered(self) -> bool:
        """
        Whether bytes after the last frame returned are waiting: the start
        of another frame, or heart-beats.
        """
        return self._start < len(self._buffer)

    def feed(self, data: bytes) -> None:
        """
        Add bytes received from the peer.

        @param data: the bytes, of any length, split anywhere.
        @raise FrameError: more than C{limits.max_buffered} bytes would be
            waiting to be returned as frames, or an earlier call failed.
        """
        if self._error is not None:
            raise self._error
        if self._body is not None:
            data = self._into_body(data)
            if not data:
                return
        buffer = self._buffer
        start = self._start
        if len(buffer) - start + len(data) > self.limits.max_buffered:
            self._fail(
                "too much unprocessed data",
                f"more than {self.limits.max_buffered} bytes are waiting to be "
                "processed",
            )
        self._start = 0
        if start == len(buffer):
            # Nothing is waiting, as after most reads: the chunk itself is
            # the buffer, not copied, and frame bodies are sliced out of it
            # with one copy each.
            self._buffer = data if data.__class__ is bytes else bytes(data)
        elif buffer.__class__ is bytes:
            # Part of a frame is waiting: from here on a bytearray, which
            # grows in place rather than being copied whole for every chunk.
            buffer = self._buffer = bytearray(memoryview(buffer)[start:])
            buffer += data
        else:
            # Dropping the consumed prefix once per chunk, not once per
            # frame, keeps next_frame() to index arithmetic. CPython drops a
            # bytearray's prefix by moving its start pointer and copies only
            # when it shrinks the allocation, so this stays cheap.
            del buffer[:start]
            buffer += data

    def next_frame(self) -> Frame | None:
        """
        Return the next complete frame, or C{None} when more bytes are needed.

        Only the bytes of the returned frame (and heart-beat EOLs before it)
        are consumed.

        @raise FrameError: the bytes are not a valid frame, or break one of
            the limits. The connection should be closed.
        """
        if self._error is not None:
            raise self._error
        if self._pending is not None:
            return self._finish_body()

        buffer = self._buffer
        start = self._start
        end = len(buffer)
        if start == end:
            if start:
                # All of it is consumed: an idle connection holds no bytes.
                self._buffer = b""
                self._start = 0
            return None

        # Skip heart-beats. A CR at the very end may yet be half of a CRLF.
        byte = buffer[start]
        if byte == _LF or byte == _CR:
            start = _HEART_BEATS.match(buffer, start).end()  # type: ignore[union-attr]
            self._start = start
            if start == end or (start + 1 == end and buffer[start] == _CR):
                return None

        scanned = self._head_scanned
        # A header end that straddled the previous end of the buffer starts at
        # most two bytes before it.
        match = _HEADER_END.search(
            buffer, start + scanned - 2 if scanned > 2 else start, start + self._max_head
        )
        if match is None:
            self._check_partial_head(start, end)
            return None
        if scanned:
            self._head_scanned = self._head_lines = self._head_line_start = 0

        version = self._version
        head_end = match.start()
        command, headers = self._parse_head(buffer, start, head_end, version)
        body_start = match.end()
        body_offset = body_start - start

        length_text = headers.get("content-length")
        if length_text is None:
            # The body ends at the first NUL. Search no further than the
            # largest body allowed: the buffer may hold many frames.
            max_body = self._max_frame_size - 1 - body_offset
            if max_body > self._max_body_size:
                max_body = self._max_body_size
            body_end = buffer.find(b"\x00", body_start, body_start + max_body + 1)
            if body_end < 0:
                self._pending = (command, headers, version, head_end - start, body_offset, None)
                # Everything buffered was searched; _finish_body checks the
                # limits and resumes the search when more bytes arrive.
                self._body_scanned = end - body_start
                return self._finish_body()
        else:
            length = self._content_length(length_text, body_offset)
            body_end = body_start + length
            if body_end >= end:
                self._pending = (command, headers, version, head_end - start, body_offset, length)
                if body_end - end >= _BODY_IN_PLACE_FROM:
                    self._receive_body_in_place(start, body_start, end, length)
                return None
            if buffer[body_end]:
                self._fail_missing_nul(length)
        self._start = body_end + 1
        self.frame_size = body_end + 1 - start
        return Frame(command, headers, bytes(buffer[body_start:body_end]))

    def _fail(self, message: str, detail: str) -> NoReturn:
        # Every error goes through here, so that later calls raise it again.
        self._error = FrameError(message, detail)
        raise self._error

    def _content_length(self, text: str, body_offset: int) -> int:
        """
        Check a content-length header against the limits and return it.
        """
        if not (text.isascii() and text.isdigit()):
            self._fail(
                "invalid content-length",
                f"content-length must be a non-negative decimal integer, not "
                f"{text[:32]!r}",
            )
        length = int(text)
        limits = self.limits
        if length > limits.max_body_size:
            self._fail(
                f"body exceeds {limits.max_body_size} bytes",
                f"content-length {length} is larger than the {limits.max_body_size} "
                "bytes allowed for a body",
            )
        if body_offset + length + 1 > limits.max_frame_size:
            self._fail(
                "frame too large",
                f"a frame with {body_offset} bytes of command and headers and a "
                f"{length}-byte body is larger than the {limits.max_frame_size} "
                "bytes allowed",
            )
        return length

    def _receive_body_in_place(self, start: int, body_start: int, end: int, length: int | None) -> None:
        """
        The pending frame's body is large and (its C{length} says, or no NUL
        has come yet) mostly still to come: it goes to a buffer of its own,
        the rest of it as it comes (L{_into_body}, or straight from the
        socket into L{body_buffer}).
        """
        buffer = self._buffer
        self._body_head = bytes(buffer[start:body_start])
        received = end - body_start
        if length is None:
            self._body = bytearray(buffer[body_start:end])
        else:
            self._body = _new_body(length)
            self._body_view = memoryview(self._body)
            self._body_view[:received] = buffer[body_start:end]
        self._body_received = received
        self._body_length = length
        self._buffer = b""
        self._start = 0

    def body_buffer(self) -> memoryview | None:
        """
        Where the next bytes of a large content-length body being received
        go, if one is: a transport may receive into this view, and then say
        how much it put there with L{body_filled}, instead of calling
        L{feed}. The bytes after the body (its NUL first) come through
        L{feed} as usual.
        """
        view = self._body_view
        if view is None or self._error is not None or self._body_received == len(view):
            return None
        return view[self._body_received :]

    def body_filled(self, count: int) -> None:
        """
        C{count} bytes were received into L{body_buffer}.
        """
        self._body_received += count

    def _into_body(self, data: bytes) -> bytes:
        """
        Keep C{data} for the body being received in place; return what comes
        after the body (its NUL first), for the stream buffer.
        """
        received = self._body_received
        if received + len(data) > self.limits.max_buffered:
            self._fail(
                "too much unprocessed data",
                f"more than {self.limits.max_buffered} bytes are waiting to be processed",
            )
        rest = b""
        if self._body_length is None:
            # The body ends at the first NUL.
            nul = data.find(b"\x00")
            if nul >= 0:
                data, rest = data[:nul], data[nul:]
                self._body_length = received + nul
            limits = self.limits
            max_body = min(limits.max_body_size, limits.max_frame_size - len(self._body_head) - 1)
            if received + len(data) > max_body:
                self._fail_no_nul_within(max_body)
            self._body += data
        else:
            missing = self._body_length - received
            if len(data) > missing:
                data, rest = data[:missing], data[missing:]
            self._body_view[received : received + len(data)] = data
        self._body_received = received + len(data)
        return rest

    def _finish_body_in_place(self) -> Frame | None:
        """
        Complete the pending frame whose body was received in place, once
        the body and the NUL after it have arrived.
        """
        if self._body_received != self._body_length or self._start == len(self._buffer):
            return None
        command, headers, version, head_size, body_offset, length = self._pending
        if self._buffer[self._start]:
            self._fail_missing_nul(length)
        if version != self._version:
            command, headers = self._parse_head(self._body_head, 0, head_size, self._version)
        # The buffer it was received into is the body, not copied into a
        # bytes: nothing changes it from here on (see L{Frame.body}).
        body = self._body
        self._body = self._body_view = None
        self._body_head = b""
        self._pending = None
        self._start += 1
        self.frame_size = body_offset + len(body) + 1
        return Frame(command, headers, body)

    def _finish_body(self) -> Frame | None:
        """
        Complete the pending frame if its body has arrived.
        """
        assert self._pending is not None
        if self._body is not None:
            return self._finish_body_in_place()
        command, headers, version, head_size, body_offset, length = self._pending
        buffer = self._buffer
        start = self._start
        body_start = start + body_offset
        end = len(buffer)

        if length is None:
            limits = self.limits
            # One byte past the largest allowed body is where its NUL may be.
            max_body = min(limits.max_body_size, limits.max_frame_size - body_offset - 1)
            body_end = buffer.find(
                b"\x00", body_start + self._body_scanned, body_start + max_body + 1
            )
            if body_end < 0:
                scanned = end - body_start
                if scanned > max_body:
                    self._fail_no_nul_within(max_body)
                self._body_scanned = scanned
                if scanned >= _BODY_IN_PLACE_FROM:
                    self._receive_body_in_place(start, body_start, end, None)
                return None
        else:
            body_end = body_start + length
            if body_end >= end:
                return None
            if buffer[body_end]:
                self._fail_missing_nul(length)

        if version != self._version:
            # The session changed the version while this frame was incomplete:
            # decode its headers again, the way the session now expects.
            command, headers = self._parse_head(
                buffer, start, start + head_size, self._version
            )
        self._pending = None
        self._start = body_end + 1
        self.frame_size = body_end + 1 - start
        return Frame(command, headers, bytes(buffer[body_start:body_end]))

    def _check_partial_head(self, start: int, end: int) -> None:
        """
        Fail as soon as an incomplete header block breaks a limit, so that a
        client cannot make the broker buffer a header block that never ends.
        Only the bytes that arrived since the last call are scanned.
        """
        buffer = self._buffer
        limits = self.limits
        max_line = limits.max_header_line
        if end - start >= self._max_head:
            self._fail(
                "header block too large",
                f"the command and headers of a frame may take at most "
                f"{self._max_head} bytes",
            )
        scan_from = start + self._head_scanned
        line_start = start + self._head_line_start
        if buffer.find(b"\x00", scan_from, end) >= 0:
            # Without this, a frame lacking the blank line after its headers
            # would wait for one until a limit is hit.
            self._fail_nul_in_head()
        newline = buffer.find(b"\n", scan_from, end)
        if newline >= 0:
            # The line that was incomplete is now complete.
            if _line_length(buffer, line_start, newline) > max_line:
                self._fail_long_line(newline - line_start)
            last = buffer.rfind(b"\n", newline, end)
            if last - newline > max_line:
                # Some line completed in between may be too long.
                for line in bytes(buffer[newline + 1 : last]).split(b"\n"):
                    if len(line) - line.endswith(b"\r") > max_line:
                        self._fail_long_line(len(line))
            self._head_lines += buffer.count(b"\n", newline, end)
            if self._head_lines > limits.max_headers + 1:
                self._fail_header_count()
            line_start = last + 1
            self._head_line_start = line_start - start
        # The incomplete line may end with the CR of a CRLF.
        partial = end - line_start
        if partial > max_line and (partial > max_line + 1 or buffer[end - 1] != _CR):
            self._fail_long_line(partial)
        self._head_scanned = end - start

    def _parse_head(
        self, buffer: bytes | bytearray, start: int, head_end: int, version: str
    ) -> tuple[str, dict[str, str]]:
        """
        Parse a header block: the command line and the header lines, without
        the EOL of the last line.
        """
        head = buffer[start:head_end]
        limits = self.limits
        if head_end - start > limits.max_header_line:
            for line in head.split(b"\n"):
                if len(line) - line.endswith(b"\r") > limits.max_header_line:
                    self._fail_long_line(len(line))
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError as error:
            self._fail(
                "invalid UTF-8 in headers",
                f"the command and headers must be UTF-8: {error}",
            )
        if "\x00" in text:
            self._fail_nul_in_head()
        if "\r" in text:
            # Only a CR right before an LF belongs to the EOL. The last line's
            # EOL is not in the text, but its CR is.
            text = text.replace("\r\n", "\n")
            if text[-1:] == "\r":
                text = text[:-1]
        lines = text.split("\n")

        command = lines[0]
        if command not in _valid_commands:
            self._check_command(command)
        if len(lines) == 1:
            return command, {}
        if len(lines) > limits.max_headers + 1:
            self._fail_header_count()

        unescape = version != "1.0" and "\\" in text and command not in _UNESCAPED_COMMANDS
        headers: dict[str, str] = {}
        # Measured faster than building the dict in C with dict(map(...)).
        for line in islice(lines, 1, None):
            name, colon, value = line.partition(":")
            if not colon:
                self._fail(
                    "invalid header line",
                    f"header line {line[:64]!r} has no ':' between the name and "
                    "the value",
                )
            if unescape:
                try:
                    name = unescape_header(name, version)
                    value = unescape_header(value, version)
                except FrameError as error:
                    self._error = error
                    raise
            # The first of repeated headers wins, as STOMP 1.2 requires.
            if name not in headers:
                headers[name] = value
        return command, headers

    def _check_command(self, command: str) -> None:
        """
        Check that a command looks like one, then remember it as valid.
        Whether it is a command the broker knows is for the session to say.
        """
        if not command or not (command.isascii() and command.isprintable()) or " " in command:
            self._fail(
                "invalid command",
                f"a command must be non-empty printable ASCII without spaces, not "
                f"{command[:32]!r}",
            )
        if len(_valid_commands) < _MAX_VALID_COMMANDS:
            _valid_commands.add(command)

    def _fail_nul_in_head(self) -> NoReturn:
        self._fail(
            "NUL octet in headers",
            "a NUL octet ends a frame, so it cannot appear in the command or "
            "headers; the frame may lack the blank line after its headers",
        )

    def _fail_no_nul_within(self, max_body: int) -> NoReturn:
        limits = self.limits
        if max_body == limits.max_body_size:
            self._fail(
                f"body exceeds {limits.max_body_size} bytes",
                f"no NUL octet ends the body within {limits.max_body_size} "
                "bytes; a larger body is not allowed",
            )
        self._fail(
            "frame too large",
            f"no NUL octet ends the frame within {limits.max_frame_size} "
            "bytes; a larger frame is not allowed",
        )

    def _fail_missing_nul(self, length: int) -> NoReturn:
        self._fail(
            "missing NUL after body",
            f"the {length} bytes of body given by content-length are not "
            "followed by a NUL octet",
        )

    def _fail_long_line(self, length: int) -> NoReturn:
        self._fail(
            "header line too long",
            f"a command or header line of {length} bytes is longer than the "
            f"{self.limits.max_header_line} bytes allowed",
        )

    def _fail_header_count(self) -> NoReturn:
        self._fail(
            "too many headers",
            f"a frame may have at most {self.limits.max_headers} header lines",
        )


@functools.lru_cache(maxsize=16)
def _max_head(limits: Limits) -> int:
    """
    How long a frame's header block may be: a client that never ends its
    header block is cut off here at the latest. Worked out once per
    L{Limits}, which every connection shares.
    """
    return min(
        limits.max_frame_size,
        # the command line and max_headers header lines, each with a CRLF,
        # then the blank line
        (limits.max_headers + 1) * (limits.max_header_line + 2) + 2,
    )


def _line_length(buffer: bytes | bytearray, line_start: int, newline: int) -> int:
    """
    The length of the line from C{line_start} to C{newline}, without its EOL.
    """
    if newline > line_start and buffer[newline - 1] == _CR:
        return newline - 1 - line_start
    return newline - line_start

