"""A minimal blocking WebSocket client (RFC 6455), standard library only.

Just enough for the load generator to speak STOMP over WebSocket the way a
browser client does, without a third-party package:

- the HTTP/1.1 Upgrade handshake, checking the status line, ``Upgrade``,
  ``Connection`` and ``Sec-WebSocket-Accept`` (SHA-1 of our random
  ``Sec-WebSocket-Key``), and that the server picked one of the offered
  subprotocols and no extension (we offer none);
- masked client frames, text or binary, one frame per ``sendall``;
- reading text, binary and continuation frames with 7-, 16- and 64-bit
  lengths, answering pings with pongs and the close handshake.

:class:`WebSocketStream` looks like a socket to its user: ``sendall(data)``
sends ``data`` as one message and ``recv(n)`` returns message payload bytes
as they arrive, across message boundaries, the way ``recv`` on TCP returns
stream bytes.  That is exactly what STOMP needs: its frames delimit
themselves, and servers differ in how they map frames to messages (RabbitMQ
sends one STOMP frame per message, stompd one message per write, and either
may fragment).  A payload is returned as soon as part of it has arrived, so
a large message is never held back waiting for its last byte.  Text payloads
are passed on undecoded; checking their UTF-8 is the reader's business.

``recv`` raises :class:`WebSocketClosed` once the server's close frame has
been read (after replying to it), and returns ``b""`` when the TCP
connection ends without one, as a socket would.
"""

import base64
import hashlib
import os
import socket

# RFC 6455 section 1.3: appended to the key before hashing.
ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

# Handshake responses longer than this are refused.
MAX_RESPONSE_HEAD = 16 * 1024


class WebSocketError(OSError):
    """The handshake failed or the server broke the WebSocket protocol."""


class WebSocketClosed(ConnectionError):
    """The server closed the WebSocket with a close frame.

    ``code`` is its status code (None if the frame had none) and ``reason``
    its text.
    """

    def __init__(self, code, reason):
        self.code = code
        self.reason = reason
        super().__init__("server closed the WebSocket: %s%s" % (
            code if code is not None else "no status code",
            " (%s)" % reason if reason else ""))


def accept_value(key):
    """The ``Sec-WebSocket-Accept`` a server must answer to ``key`` (str)."""
    digest = hashlib.sha1(key.encode("ascii") + ACCEPT_GUID).digest()
    return base64.b64encode(digest).decode("ascii")


def mask_payload(mask, payload):
    """XOR ``payload`` with the 4-byte ``mask`` repeated (one big-int operation)."""
    size = len(payload)
    if not size:
        return b""
    repeated = (mask * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(repeated, "little")).to_bytes(size, "little")


def encode_frame(opcode, payload, fin=True):
    """One masked client frame: header, 4-byte masking key, masked payload."""
    size = len(payload)
    first = (0x80 if fin else 0) | opcode
    if size < 126:
        head = bytes((first, 0x80 | size))
    elif size < 1 << 16:
        head = bytes((first, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((first, 0x80 | 127)) + size.to_bytes(8, "big")
    mask = os.urandom(4)
    return head + mask + mask_payload(mask, payload)


def _parse_response_head(head):
    """Split an HTTP response head into (status code, reason, {lower-case name: value})."""
    lines = head.decode("iso-8859-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise WebSocketError("not an HTTP response: %r" % lines[0][:200])
    headers = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise WebSocketError("malformed response header line %r" % line[:200])
        name = name.strip().lower()
        value = value.strip()
        # Repeated headers are one comma-separated list (RFC 9110 5.3).
        headers[name] = headers[name] + ", " + value if name in headers else value
    return int(parts[1]), parts[2] if len(parts) > 2 else "", headers


def _tokens(value):
    return [t.strip().lower() for t in value.split(",") if t.strip()]


class WebSocketStream:
    """A client WebSocket connection presented as a byte stream (see the module docstring).

    ``subprotocol`` is what the server chose (None if it chose nothing);
    ``binary`` selects binary rather than text messages for ``sendall``.
    Methods other than ``recv``, ``sendall`` and ``close`` (``settimeout``,
    ``setsockopt``, ``fileno`` ...) go to the TCP socket underneath, so the
    object can stand in for a socket, also in ``select``.
    """

    def __init__(self, sock, subprotocol, initial=b"", binary=False):
        self.sock = sock
        self.subprotocol = subprotocol
        self.binary = binary
        self.close_code = None
        self.close_reason = ""
        # Unparsed bytes: at most one frame header or one control frame.
        self._buf = b""
        # Payload bytes still to come of the data frame being read.
        self._left = 0
        # A fragmented message is open: only continuation frames may follow.
        self._in_message = False
        self._closed = False
        self._pending = initial

    def __getattr__(self, name):
        return getattr(self.sock, name)

    # -- sending ----------------------------------------------------------

    def sendall(self, data):
        """Send ``data`` as one masked text (or binary) message."""
        self.sock.sendall(encode_frame(OP_BINARY if self.binary else OP_TEXT, data))

    def send_close(self, code=1000, reason=""):
        """Start (or answer) the close handshake; best effort."""
        if self._closed:
            return
        self._closed = True
        payload = code.to_bytes(2, "big") + reason.encode("utf-8")[:123] if code is not None else b""
        try:
            self.sock.sendall(encode_frame(OP_CLOSE, payload))
        except OSError:
            pass

    def close(self):
        """Send a close frame (unless one was exchanged already) and close the socket."""
        try:
            if not self._closed:
                # A short bound: the peer may already have gone.
                self.sock.settimeout(1.0)
                self.send_close(1000)
        except OSError:
            pass
        finally:
            self.sock.close()

    # -- receiving --------------------------------------------------------

    def recv(self, bufsize):
        """Return payload bytes of data messages, reading the socket once or more.

        Reads until at least one payload byte is available, so a read that
        brought only a frame header or a ping does not look like the end of
        the stream.  Socket time-outs and BlockingIOError propagate as from
        the socket itself (a partly read frame is kept for the next call).
        """
        if self.close_code is not None:
            raise WebSocketClosed(self.close_code, self.close_reason)
        while True:
            if self._pending:
                chunk, self._pending = self._pending, b""
            else:
                chunk = self.sock.recv(bufsize)
                if not chunk:
                    if self._left or self._buf:
                        raise WebSocketError("connection ended inside a WebSocket frame")
                    return b""
            payload = self._feed(chunk)
            if payload:
                # A close frame that came in the same read is reported by
                # the next call, after this data has been handed over.
                return payload
            if self.close_code is not None:
                raise WebSocketClosed(self.close_code, self.close_reason)

    def _feed(self, data):
        """Parse ``data``; handle control frames; return the data payload bytes in it."""
        buf = self._buf + data if self._buf else data
        size = len(buf)
        pos = 0
        out = []
        while pos < size:
            left = self._left
            if left:
                end = pos + left
                if end > size:
                    out.append(buf[pos:])
                    self._left = end - size
                    pos = size
                    break
                out.append(buf[pos:end])
                self._left = 0
                pos = end
                continue
            if self.close_code is not None:
                raise WebSocketError("data after the close frame")
            if size - pos < 2:
                break
            first = buf[pos]
            second = buf[pos + 1]
            if second & 0x80:
                raise WebSocketError("server sent a masked frame")
            if first & 0x70:
                raise WebSocketError("reserved bits set (no extension was negotiated)")
            length = second & 0x7F
            header = 2
            if length == 126:
                header = 4
                if size - pos < header:
                    break
                length = int.from_bytes(buf[pos + 2:pos + 4], "big")
            elif length == 127:
                header = 10
                if size - pos < header:
                    break
                length = int.from_bytes(buf[pos + 2:pos + 10], "big")
                if length >> 63:
                    raise WebSocketError("64-bit frame length with the top bit set")
            opcode = first & 0x0F
            fin = first & 0x80
            if opcode & 0x8:
                # Control frames are short, unfragmented, and may come
                # between the fragments of a message; wait for all of one.
                if not fin or length > 125:
                    raise WebSocketError("fragmented or oversized control frame")
                if size - pos < header + length:
                    break
                self._control(opcode, buf[pos + header:pos + header + length])
                pos += header + length
                continue
            if opcode == OP_CONTINUATION:
                if not self._in_message:
                    raise WebSocketError("continuation frame outside a fragmented message")
            elif opcode in (OP_TEXT, OP_BINARY):
                if self._in_message:
                    raise WebSocketError("new data frame inside a fragmented message")
            else:
                raise WebSocketError("reserved opcode 0x%x" % opcode)
            self._in_message = not fin
            self._left = length
            pos += header
        self._buf = buf[pos:] if pos < size else b""
        if len(out) == 1:
            return out[0]
        return b"".join(out)

    def _control(self, opcode, payload):
        """Answer a ping, ignore a pong, take part in the close handshake."""
        if opcode == OP_PING:
            self.sock.sendall(encode_frame(OP_PONG, payload))
        elif opcode == OP_CLOSE:
            if len(payload) == 1:
                raise WebSocketError("close frame with a 1-byte payload")
            code = int.from_bytes(payload[:2], "big") if payload else None
            reason = payload[2:].decode("utf-8", errors="replace")
            self.close_code = code if code is not None else 1005
            self.close_reason = reason
            # Echo the status code, as RFC 6455 5.5.1 asks.
            self.send_close(code)
        elif opcode != OP_PONG:
            raise WebSocketError("reserved control opcode 0x%x" % opcode)


def connect(host, port, path="/", subprotocols=(), timeout=10.0, binary=False,
            origin=None, require_subprotocol=True):
    """Open a WebSocket to ``ws://host:port/path``; return a :class:`WebSocketStream`.

    ``subprotocols`` are offered in order; with ``require_subprotocol`` (and
    any offered) the server must pick one of them.  Raises
    :class:`WebSocketError` when the server refuses or answers wrongly, and
    ``OSError`` for network errors; ``timeout`` bounds connecting and the
    handshake and stays set on the socket.
    """
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        host_header = "[%s]" % host if ":" in host else host
        lines = [
            "GET %s HTTP/1.1" % (path or "/"),
            "Host: %s:%d" % (host_header, port),
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Key: %s" % key,
            "Sec-WebSocket-Version: 13",
        ]
        if subprotocols:
            lines.append("Sec-WebSocket-Protocol: %s" % ", ".join(subprotocols))
        if origin:
            lines.append("Origin: %s" % origin)
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))

        response = b""
        while b"\r\n\r\n" not in response:
            if len(response) > MAX_RESPONSE_HEAD:
                raise WebSocketError("handshake response head longer than %d bytes" % MAX_RESPONSE_HEAD)
            chunk = sock.recv(4096)
            if not chunk:
                raise WebSocketError("connection closed during the handshake")
            response += chunk
        head, _, rest = response.partition(b"\r\n\r\n")
        status, reason, headers = _parse_response_head(head)
        if status != 101:
            raise WebSocketError("handshake refused: HTTP %d %s" % (status, reason))
        if "websocket" not in _tokens(headers.get("upgrade", "")):
            raise WebSocketError("handshake answer without Upgrade: websocket")
        if "upgrade" not in _tokens(headers.get("connection", "")):
            raise WebSocketError("handshake answer without Connection: Upgrade")
        if headers.get("sec-websocket-accept") != accept_value(key):
            raise WebSocketError("wrong Sec-WebSocket-Accept %r" % headers.get("sec-websocket-accept"))
        if headers.get("sec-websocket-extensions"):
            raise WebSocketError("server chose extensions we did not offer: %s"
                                 % headers["sec-websocket-extensions"])
        chosen = headers.get("sec-websocket-protocol") or None
        if chosen is not None and chosen not in subprotocols:
            raise WebSocketError("server chose subprotocol %r, offered %s" % (chosen, list(subprotocols)))
        if chosen is None and subprotocols and require_subprotocol:
            raise WebSocketError("server chose none of the subprotocols %s" % list(subprotocols))
        return WebSocketStream(sock, chosen, initial=rest, binary=binary)
    except BaseException:
        sock.close()
        raise
