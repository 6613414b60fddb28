#!/usr/bin/env python3
"""STOMP 1.2 load generator for stompd and reference brokers.

Runs these scenarios against one broker and verifies every message:

``fanout``
    One producer sends N messages to one topic with ten subscribers.
``wsfanout``
    The same with the subscribers connected over WebSocket (subprotocol
    ``v12.stomp``) and, by default, the producer over TCP; only with
    ``--ws-port``.
``fanout-2node``
    The same with the producer on one broker node and the subscribers on
    another node of the same broker (``--subscriber-broker HOST:PORT``),
    e.g. two stompd processes sharing one Redis.
``queue``
    Four producers send N messages in all to one queue drained by four
    consumers (``ack:client-individual``, prefetch, one ACK per message);
    reports throughput and the send-to-receipt latency under that load.
    Its variants (``queue-persistent``, ``queue-visibility``,
    ``queue-priority``, ``queue-header``) add one header to every SEND or
    SUBSCRIBE.
``latency``
    One producer paced at a fixed rate (2,000 msg/s) for a fixed time to a
    topic with one subscriber; reports the latency distribution.
``large``, ``large-fanout``
    One producer sends 1 MiB bodies (``--large-bytes``) to a queue with
    one consumer, or to a topic with ten subscribers; reports MB/s.
    Bodies are written with ``sendmsg`` and read with ``recv_into`` so
    that the generator copies them as little as it asks the broker to.

Every producer and consumer runs in its own OS process (``multiprocessing``)
and speaks STOMP 1.2 over a plain blocking socket (or a WebSocket from the
minimal client in ``wsclient.py``) with a small frame reader of its own, so
that the generator is not what limits a broker. A broker that speaks only
STOMP 1.0 (stompserver) runs the scenarios without ACKs; the ones with ACKs
fail on it at SUBSCRIBE, saying so.  Bodies are
100 bytes (the large scenarios aside) and start with ``<producer>:<sequence>:<monotonic ns>:``;
consumers record every (producer, sequence) pair and a run with lost,
duplicated or corrupted messages fails loudly and exits non-zero.

Run ``python benchmarks/stomp_load.py --help`` for the options and
``benchmarks/README.md`` for what the figures mean.
"""

import argparse
import array
import collections
import ctypes
import json
import math
import multiprocessing
import queue as queue_module
import select
import socket
import sys
import time
import uuid

import wsclient

BODY_SIZE = 100

# "<producer:6>:<sequence:10>:<send ns:19>:" then padding up to BODY_SIZE.
BODY_HEAD = b"%06d:%010d:%019d:"
BODY_HEAD_SIZE = 6 + 1 + 10 + 1 + 19 + 1
BODY_PAD = b"x" * (BODY_SIZE - BODY_HEAD_SIZE)

EXIT_OK = 0
EXIT_VERIFY_FAILED = 1
EXIT_ERROR = 2

# Worker -> parent event kinds on the shared multiprocessing queue.
EV_READY = "ready"
EV_RESULT = "result"
EV_ERROR = "error"

NS = 1_000_000_000

# The paced producer catches up at most this far behind its schedule
# (10 messages at 2,000 msg/s) and restarts the schedule after longer stalls.
MAX_BEHIND_MS = 5

# Consumers pause for --coalesce-ms after a read shorter than this.
COALESCE_BELOW = 64 * 1024
# ...but queue consumers only with at least this prefetch.
MIN_PREFETCH_TO_COALESCE = 50

# The WebSocket subprotocol for STOMP 1.2 (stompd, RabbitMQ Web-STOMP, stompjs).
WS_SUBPROTOCOL = "v12.stomp"


class StompError(Exception):
    """The broker sent an ERROR frame, closed the connection or broke the protocol."""


# -- wire format -----------------------------------------------------------


def split_frames(buf):
    """Split ``buf`` into complete frames; return ``(frames, rest)``.

    Each frame is ``(command, headers, body)`` where ``headers`` is the raw
    header block starting and ending with ``\\n`` (so ``b"\\nname:"`` finds
    a header; values may end in ``\\r`` when the peer uses CRLF).  ``rest`` is
    the unparsed tail, to be prepended to the next read.  Header values are
    left escaped: we only echo them back (``ack``) or read numbers from them.

    This is deliberately minimal and hot: it handles LF and CRLF line ends,
    EOL heart-beats between frames, ``content-length`` and NUL-terminated
    bodies, and nothing else.
    """
    frames = []
    append = frames.append
    find = buf.find
    size = len(buf)
    pos = 0
    while pos < size:
        first = buf[pos]
        if first == 10 or first == 13:
            # Heart-beat / frame-trailing EOL (RabbitMQ sends one after every frame).
            pos += 1
            continue
        eol = find(b"\n", pos)
        if eol < 0:
            break
        head_end = find(b"\n\n", eol)
        # A CRLF blank line ("\n\r\n") may come before any "\n\n"; the
        # second search only covers the header block, so it is cheap.
        crlf_end = find(b"\n\r\n", eol, head_end if head_end >= 0 else size)
        if crlf_end >= 0:
            head_end = crlf_end
            body_start = crlf_end + 3
        elif head_end >= 0:
            body_start = head_end + 2
        else:
            break
        command = buf[pos:eol]
        if command[-1:] == b"\r":
            command = command[:-1]
        headers = buf[eol:head_end + 1]
        i = headers.find(b"\ncontent-length:")
        if i >= 0:
            j = headers.find(b"\n", i + 16)
            end = body_start + int(headers[i + 16:j])
            if end >= size:
                break
            if buf[end] != 0:
                raise StompError("frame body not NUL-terminated after content-length")
        else:
            end = find(b"\x00", body_start)
            if end < 0:
                break
        append((command, headers, buf[body_start:end]))
        pos = end + 1
    return frames, buf[pos:]


def header_value(headers, name):
    """Return the first value of header ``name`` (bytes) in a raw header block, or None."""
    key = b"\n" + name + b":"
    i = headers.find(key)
    if i < 0:
        return None
    start = i + len(key)
    value = headers[start:headers.find(b"\n", start)]
    return value[:-1] if value.endswith(b"\r") else value


def escape_header(value):
    """Escape a header value as STOMP 1.2 requires (not used for CONNECT)."""
    return (value.replace("\\", "\\\\").replace("\r", "\\r")
            .replace("\n", "\\n").replace(":", "\\c"))


def encode_frame(command, headers, body=b""):
    """Encode one frame; ``headers`` is a list of (name, value) str pairs."""
    escape = (lambda v: v) if command in ("CONNECT", "STOMP") else escape_header
    lines = [command] + ["%s:%s" % (escape(k), escape(str(v))) for k, v in headers]
    return ("\n".join(lines) + "\n\n").encode() + body + b"\x00"


def error_text(headers, body):
    """Human-readable summary of an ERROR frame."""
    message = header_value(headers, b"message") or b""
    return "ERROR frame: %s %s" % (
        message.decode(errors="replace"), body[:300].decode(errors="replace").strip())


def make_body(producer_id, seq, sent_ns):
    """Build one 100-byte message body."""
    return BODY_HEAD % (producer_id, seq, sent_ns) + BODY_PAD


class StompConnection:
    """A blocking STOMP 1.2 client connection over TCP or WebSocket.

    Used for the control part of each worker (CONNECT, SUBSCRIBE with a
    receipt, DISCONNECT); the hot loops read ``sock`` and call
    ``split_frames`` themselves, starting with ``rest`` and ``pending``.

    With ``ws_path`` the connection is a WebSocket to ``ws://host:port``
    plus that path, offering the ``v12.stomp`` subprotocol; ``sock`` is then
    a ``wsclient.WebSocketStream``, which reads and writes like a socket
    (each ``sendall`` is one WebSocket message), so nothing else changes.
    """

    def __init__(self, host, port, login, passcode, vhost, timeout=10.0, ws_path=None):
        if ws_path is None:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        else:
            self.sock = wsclient.connect(host, port, ws_path, (WS_SUBPROTOCOL,), timeout=timeout)
        self.rest = b""
        # Frames read while waiting for something else (e.g. a MESSAGE that
        # arrived before a receipt); the hot loop processes them first.
        self.pending = []
        try:
            self._connect(login, passcode, vhost, timeout)
        except BaseException:
            self.close()
            raise

    def _connect(self, login, passcode, vhost, timeout):
        """Send CONNECT; a broker that speaks only STOMP 1.0 is taken too
        (``self.version``), for the scenarios that need no 1.2 ACKs."""
        # Small frames matter for the latency scenario; producers batch
        # their own writes, so Nagle only ever adds delay here.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        headers = [("accept-version", "1.0,1.1,1.2"), ("host", vhost),
                   ("heart-beat", "0,0")]
        if login is not None:
            headers += [("login", login), ("passcode", passcode or "")]
        self.sock.sendall(encode_frame("CONNECT", headers))
        command, hdrs, body = self.next_frame(time.monotonic() + timeout)
        if command != b"CONNECTED":
            raise StompError("CONNECT refused: " + error_text(hdrs, body))
        # A 1.0 broker sends no version header.
        self.version = header_value(hdrs, b"version") or b"1.0"
        if self.version not in (b"1.0", b"1.2"):
            raise StompError("broker negotiated STOMP %r; this tool speaks 1.2 (or plain 1.0)"
                             % self.version)

    def read_frames(self, timeout):
        """Read once (waiting up to ``timeout`` s); return the complete frames."""
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(1 << 18)
        except socket.timeout:
            return []
        if not chunk:
            raise StompError("broker closed the connection")
        frames, self.rest = split_frames(self.rest + chunk)
        return frames

    def next_frame(self, deadline):
        """Return the next frame, or raise StompError at ``deadline``."""
        while not self.pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StompError("timed out waiting for a frame")
            self.pending.extend(self.read_frames(min(remaining, 1.0)))
        return self.pending.pop(0)

    def request_receipt(self, frame_bytes, receipt_id, deadline):
        """Send a frame carrying ``receipt:receipt_id`` and wait for its RECEIPT.

        Other frames that arrive meanwhile stay in ``pending``.
        """
        self.sock.sendall(frame_bytes)
        want = receipt_id.encode()
        frames, self.pending = self.pending, []
        while True:
            for i, (command, headers, body) in enumerate(frames):
                if command == b"ERROR":
                    raise StompError(error_text(headers, body))
                if command == b"RECEIPT" and header_value(headers, b"receipt-id") == want:
                    # Keep everything else, in order, for the caller.
                    self.pending.extend(frames[i + 1:])
                    return
                self.pending.append((command, headers, body))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StompError("no RECEIPT for %s" % receipt_id)
            frames = self.read_frames(min(remaining, 1.0))

    def subscribe(self, sub_id, destination, ack, extra, deadline):
        """SUBSCRIBE and wait for the broker to confirm it with a RECEIPT."""
        receipt = "sub-%s" % sub_id
        headers = [("id", sub_id), ("destination", destination), ("ack", ack),
                   ("receipt", receipt)] + list(extra)
        self.request_receipt(encode_frame("SUBSCRIBE", headers), receipt, deadline)

    def disconnect(self, timeout=5.0):
        """DISCONNECT with a receipt (so ACKs are known processed), then close.

        Errors are swallowed: the measurement is already complete.
        """
        try:
            self.pending.clear()
            self.request_receipt(encode_frame("DISCONNECT", [("receipt", "bye")]),
                                 "bye", time.monotonic() + timeout)
        except (OSError, StompError):
            pass
        finally:
            self.close()

    def close(self):
        """Close the socket."""
        try:
            self.sock.close()
        except OSError:
            pass


# -- worker processes ------------------------------------------------------


class WorkerContext:
    """What every worker process shares with the parent.

    ``events`` carries ready/result/error tuples to the parent; ``start``
    releases all workers at once; ``abort`` stops them early;
    ``producers_done`` tells consumers that nothing more will be sent, so a
    consumer that stops receiving can give up after ``idle_timeout`` instead
    of waiting for the hard limit; ``progress`` holds each consumer's
    received count so queue consumers can tell when the group is done.
    """

    def __init__(self, ctx, consumers):
        self.events = ctx.Queue()
        self.start = ctx.Event()
        self.abort = ctx.Event()
        self.producers_done = ctx.Event()
        self.progress = ctx.Array("q", max(consumers, 1), lock=False)


def _worker_main(name, wctx, opts, body):
    """Run ``body(name, wctx, opts)`` in a worker process; report its result or error."""
    try:
        result = body(name, wctx, opts)
        wctx.events.put((EV_RESULT, name, result))
    except Exception as exc:  # Reported to the parent, which fails the run.
        wctx.events.put((EV_ERROR, name, "%s: %s" % (type(exc).__name__, exc)))


def _open(opts):
    """Connect a worker to the broker described by its options.

    ``opts["websocket"]`` set: over WebSocket to ``ws_port`` and ``ws_path``.
    """
    if opts.get("websocket"):
        return StompConnection(opts["host"], opts["ws_port"], opts["login"],
                               opts["passcode"], opts["vhost"],
                               timeout=opts["connect_timeout"], ws_path=opts["ws_path"])
    return StompConnection(opts["host"], opts["port"], opts["login"],
                           opts["passcode"], opts["vhost"],
                           timeout=opts["connect_timeout"])


def _wait_start(name, wctx, opts):
    """Report ready, wait for the start signal; return this worker's deadline."""
    wctx.events.put((EV_READY, name, None))
    limit = time.monotonic() + opts["setup_timeout"]
    while not wctx.start.wait(0.5):
        if wctx.abort.is_set() or time.monotonic() > limit:
            raise StompError("never got the start signal")
    return time.monotonic() + opts["duration_limit"]


def _drain_receipts(conn, outstanding, block_until, deadline):
    """Consume RECEIPT frames; block until ``len(outstanding) <= block_until``.

    Returns nothing; raises StompError on ERROR or at ``deadline``.
    ``outstanding`` is a deque of receipt ids (bytes) in send order; STOMP
    brokers answer receipts in order, but we match by id to be safe.
    """
    sock = conn.sock
    while True:
        if len(outstanding) <= block_until:
            # Still pick up whatever is already there without blocking.  The
            # socket must be in non-blocking mode for this: with a timeout
            # set, CPython polls for up to that timeout before recv().
            sock.settimeout(0)
            try:
                chunk = sock.recv(1 << 16)
            except (BlockingIOError, InterruptedError):
                return
        else:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StompError("timed out waiting for %d receipts" % len(outstanding))
            sock.settimeout(min(remaining, 1.0))
            try:
                chunk = sock.recv(1 << 16)
            except socket.timeout:
                continue
        if not chunk:
            raise StompError("broker closed the connection")
        frames, conn.rest = split_frames(conn.rest + chunk)
        for command, headers, body in frames:
            if command == b"RECEIPT":
                rid = header_value(headers, b"receipt-id")
                try:
                    outstanding.remove(rid)
                except ValueError:
                    raise StompError("unexpected RECEIPT %r" % rid)
            elif command == b"ERROR":
                raise StompError(error_text(headers, body))


def producer_worker(name, wctx, opts):
    """Send ``count`` messages as fast as flow control allows.

    Flow control: every ``receipt_every``-th message (and the last one)
    carries a ``receipt`` header; at most ``max_outstanding`` receipts may be
    unanswered, so at most about receipt_every * max_outstanding messages are
    in flight unconfirmed.  Frames are written in batches of ``batch`` to
    keep system calls off the critical path.
    """
    conn = _open(opts)
    try:
        producer_id = opts["producer_id"]
        count = opts["count"]
        receipt_every = opts["receipt_every"]
        max_outstanding = opts["max_outstanding"]
        batch = opts["batch"]
        prefix = ("SEND\ndestination:%s\ncontent-length:%d\n"
                  % (opts["destination"], BODY_SIZE)).encode()
        # queue-persistent: headers every SEND carries.
        for key, value in opts.get("send_headers", ()):
            prefix += ("%s:%s\n" % (escape_header(key), escape_header(str(value)))).encode()
        # queue-priority: priorities 0-9 in turn, so that the broker reorders
        # (queue-header: the same bytes under a name the broker ignores).
        header = opts.get("cycled_header")
        prefixes = [prefix + b"%s:%d\n" % (header.encode(), n) for n in range(10)] if header else [prefix]
        plain_prefixes = [p + b"\n" for p in prefixes]
        outstanding = collections.deque()
        deadline = _wait_start(name, wctx, opts)
        sock = conn.sock
        sock.settimeout(None)
        start_ns = time.monotonic_ns()
        seq = 0
        while seq < count:
            stop = min(seq + batch, count)
            sent_ns = time.monotonic_ns()
            parts = []
            for s in range(seq, stop):
                body = BODY_HEAD % (producer_id, s, sent_ns) + BODY_PAD
                which = s % len(prefixes)
                if (s + 1) % receipt_every == 0 or s == count - 1:
                    rid = b"%d" % s
                    outstanding.append(rid)
                    parts.append(prefixes[which] + b"receipt:" + rid + b"\n\n" + body + b"\x00")
                else:
                    parts.append(plain_prefixes[which] + body + b"\x00")
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            sock.sendall(b"".join(parts))
            seq = stop
            _drain_receipts(conn, outstanding, max_outstanding, deadline)
            if wctx.abort.is_set():
                raise StompError("aborted")
        _drain_receipts(conn, outstanding, 0, deadline)
        end_ns = time.monotonic_ns()
        return {"role": "producer", "producer_id": producer_id, "sent": seq,
                "start_ns": start_ns, "end_ns": end_ns}
    finally:
        conn.disconnect()


def _set_timer_slack(ns):
    """Ask Linux for fine-grained sleeps (PR_SET_TIMERSLACK); best effort."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(29, ctypes.c_ulong(ns), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def paced_producer_worker(name, wctx, opts):
    """Send one message every 1/rate seconds for ``latency_duration`` seconds.

    Each send has a scheduled time one interval after the previous one; the
    process sleeps until then in ``select`` on the socket, so receipts are
    handled while waiting, and timer slack is lowered so the wake-up is
    close.  A message that is late by up to MAX_BEHIND_MS is sent at once and
    the schedule kept (so scheduler noise of a fraction of a millisecond does
    not lower the rate); after a longer stall the schedule restarts from now
    instead of sending all the missed messages back to back, so the broker
    never sees a catch-up burst (the achieved rate shows any shortfall).
    The body carries ``time.monotonic_ns()`` taken just before the write;
    CLOCK_MONOTONIC is system-wide on Linux, so the subscriber process can
    subtract it.  Lateness against the schedule is reported so that pacing
    quality is visible next to the latency figures.
    """
    _set_timer_slack(1000)
    conn = _open(opts)
    try:
        producer_id = opts["producer_id"]
        rate = opts["rate"]
        count = int(rate * opts["latency_duration"])
        # Receipts ten times a second bound what the broker may buffer for
        # us without adding traffic that would disturb the measurement.
        receipt_every = max(1, int(rate // 10))
        max_outstanding = opts["max_outstanding"]
        prefix = ("SEND\ndestination:%s\ncontent-length:%d\n"
                  % (opts["destination"], BODY_SIZE)).encode()
        outstanding = collections.deque()
        deadline = _wait_start(name, wctx, opts)
        sock = conn.sock
        interval_ns = NS / rate
        max_behind_ns = MAX_BEHIND_MS * 1_000_000
        # Small head start so the first send is paced like the others.
        target = time.monotonic_ns() + 20_000_000.0
        lateness = array.array("q")
        restarts = 0
        first_ns = last_ns = 0
        for seq in range(count):
            while True:
                wait_ns = target - time.monotonic_ns()
                if wait_ns <= 0:
                    break
                readable, _, _ = select.select([sock], [], [], wait_ns / NS)
                if readable:
                    _drain_receipts(conn, outstanding, len(outstanding), deadline)
            now = time.monotonic_ns()
            if seq % receipt_every == receipt_every - 1 or seq == count - 1:
                rid = b"%d" % seq
                outstanding.append(rid)
                frame = prefix + b"receipt:" + rid + b"\n\n"
            else:
                frame = prefix + b"\n"
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            sock.sendall(frame + make_body(producer_id, seq, now) + b"\x00")
            late = now - target
            lateness.append(int(late))
            if late > max_behind_ns:
                restarts += 1
                target = now + interval_ns
            else:
                target += interval_ns
            if not first_ns:
                first_ns = now
            last_ns = now
            if len(outstanding) > max_outstanding:
                _drain_receipts(conn, outstanding, max_outstanding, deadline)
            if time.monotonic() > deadline or wctx.abort.is_set():
                raise StompError("hit the duration limit while sending")
        _drain_receipts(conn, outstanding, 0, deadline)
        lateness = sorted(lateness)
        return {"role": "producer", "producer_id": producer_id, "sent": count,
                "start_ns": first_ns, "end_ns": last_ns, "schedule_restarts": restarts,
                "lag_p50_ms": percentile(lateness, 50) / 1e6 if lateness else 0.0,
                "lag_p99_ms": percentile(lateness, 99) / 1e6 if lateness else 0.0,
                "lag_max_ms": lateness[-1] / 1e6 if lateness else 0.0}
    finally:
        conn.disconnect()


def consumer_worker(name, wctx, opts):
    """Subscribe, then receive and verify messages until done.

    Done means: this consumer got ``expected`` messages (fanout, latency), or
    all consumers together got ``expected`` (queue, via shared progress).
    It then keeps reading for ``drain`` seconds to catch late duplicates.
    It gives up when the duration limit passes, or when producers are done
    and nothing arrived for ``idle_timeout`` seconds (lost messages).

    Every message body is checked: length, padding, producer id and sequence
    in range; a per-producer bitmap counts duplicates.  With
    ``ack == "client-individual"`` each MESSAGE is ACKed by its ``ack``
    header, all ACKs of one read going out in a single write.
    """
    conn = _open(opts)
    try:
        index = opts["consumer_index"]
        ack_mode = opts["ack"]
        per_producer = opts["per_producer"]
        expected = opts["expected"]
        shared = opts["shared_progress"]
        measure_latency = opts["measure_latency"]
        extra = []
        if ack_mode != "auto" and conn.version != b"1.2":
            # ACKs by the ack header, and client-individual, are STOMP 1.2.
            raise StompError("ack:%s needs STOMP 1.2; the broker speaks only %s"
                             % (ack_mode, conn.version.decode()))
        if ack_mode != "auto":
            extra = [("prefetch-count", opts["prefetch"]),
                     ("activemq.prefetchSize", opts["prefetch"])]
        extra += opts.get("subscribe_headers", [])
        conn.subscribe("0", opts["destination"], ack_mode, extra,
                       time.monotonic() + opts["connect_timeout"])
        deadline = _wait_start(name, wctx, opts)

        seen = [bytearray(n) for n in per_producer]
        last_seq = [-1] * len(per_producer)
        progress = wctx.progress
        latencies = array.array("q")
        received = duplicates = corrupt = reordered = 0
        first_ns = last_ns = 0
        do_ack = ack_mode != "auto"
        sock = conn.sock
        sock.settimeout(0.25)
        rest = conn.rest
        backlog = conn.pending
        conn.pending = []
        idle_since = time.monotonic()
        last_group = 0
        done_at = None
        drain = opts["drain"]
        idle_timeout = opts["idle_timeout"]
        incomplete = None
        coalesce = opts["coalesce"]
        chunk = None

        while True:
            if backlog:
                frames, backlog = backlog, None
                now_ns = time.monotonic_ns()
            else:
                try:
                    chunk = sock.recv(1 << 18)
                except socket.timeout:
                    chunk = None
                now_ns = time.monotonic_ns()
                if chunk is None:
                    frames = ()
                elif not chunk:
                    raise StompError("broker closed the connection")
                else:
                    frames, rest = split_frames(rest + chunk if rest else chunk)
            acks = []
            got = 0
            for command, headers, body in frames:
                if command != b"MESSAGE":
                    if command == b"ERROR":
                        raise StompError(error_text(headers, body))
                    continue
                got += 1
                if len(body) != BODY_SIZE or body[BODY_HEAD_SIZE:] != BODY_PAD:
                    corrupt += 1
                else:
                    try:
                        producer = int(body[0:6])
                        seq = int(body[7:17])
                        if producer < 0 or seq < 0:
                            raise ValueError("negative id")
                        bitmap = seen[producer]
                        if bitmap[seq]:
                            duplicates += 1
                        else:
                            bitmap[seq] = 1
                        if seq <= last_seq[producer]:
                            reordered += 1
                        last_seq[producer] = seq
                        if measure_latency:
                            latencies.append(now_ns - int(body[18:37]))
                    except (ValueError, IndexError):
                        corrupt += 1
                if do_ack:
                    i = headers.find(b"\nack:")
                    if i < 0:
                        raise StompError("MESSAGE without ack header in client-individual mode")
                    j = headers.find(b"\n", i + 5)
                    ack_id = headers[i + 5:j]
                    if ack_id.endswith(b"\r"):
                        ack_id = ack_id[:-1]
                    acks.append(b"ACK\nid:" + ack_id + b"\n\n\x00")
            if acks:
                # The short read timeout must not fail a write to a broker
                # that is merely busy; the duration limit still bounds it.
                sock.settimeout(max(deadline - time.monotonic(), 1.0))
                sock.sendall(b"".join(acks))
                sock.settimeout(0.25)
            if coalesce and chunk and len(chunk) < COALESCE_BELOW:
                # A short read means we are keeping up with the broker: one
                # wake-up per message would cost the broker's CPU (the box
                # is shared with it), so let data accumulate for a moment.
                time.sleep(coalesce)
            now = time.monotonic()
            if got:
                if not first_ns:
                    first_ns = now_ns
                last_ns = now_ns
                received += got
                progress[index] = received
            group = sum(progress) if shared else received
            if group != last_group:
                last_group = group
                idle_since = now
            if done_at is None:
                if group >= expected:
                    done_at = now
                elif now > deadline:
                    incomplete = "duration limit reached"
                    break
                elif wctx.abort.is_set():
                    incomplete = "aborted"
                    break
                elif wctx.producers_done.is_set() and now - idle_since > idle_timeout:
                    incomplete = "nothing received for %.1fs after producers finished" % idle_timeout
                    break
            elif now - done_at >= drain:
                break

        result = {
            "role": "consumer", "consumer_index": index, "received": received,
            "duplicates": duplicates, "corrupt": corrupt, "reordered": reordered,
            "first_ns": first_ns, "last_ns": last_ns, "incomplete": incomplete,
            "unique": [len(b) - b.count(0) for b in seen],
        }
        if opts["return_bitmaps"]:
            result["bitmaps"] = [bytes(b) for b in seen]
        if measure_latency and opts.get("return_latencies"):
            # Queue consumers: the parent merges the samples of the group
            # (at most 8 bytes per message, sent once at the end).
            result["latencies_ns"] = latencies.tobytes()
        elif measure_latency:
            result["latency_ms"] = latency_summary(sorted(latencies))
        return result
    finally:
        conn.disconnect()


def latency_summary(sorted_ns):
    """Percentiles, max and mean in ms of sorted latencies in ns (values None if empty)."""
    def ms(value):
        return value / 1e6 if value is not None else None
    return {
        "count": len(sorted_ns),
        "p50": ms(percentile(sorted_ns, 50)), "p90": ms(percentile(sorted_ns, 90)),
        "p99": ms(percentile(sorted_ns, 99)), "p999": ms(percentile(sorted_ns, 99.9)),
        "max": ms(sorted_ns[-1]) if sorted_ns else None,
        "mean": ms(sum(sorted_ns) / len(sorted_ns)) if sorted_ns else None,
    }


def percentile(sorted_values, pct):
    """Nearest-rank percentile of an already sorted sequence (None if empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(pct / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


# -- orchestration ---------------------------------------------------------


class RunFailed(Exception):
    """A worker failed (connection, protocol, time-out); the scenario has no figures."""


def run_workers(args, consumers, producers):
    """Start consumer and producer processes, release them together, collect results.

    ``consumers`` and ``producers`` are lists of ``(name, target, opts)``.
    Returns ``(consumer_results, producer_results, wall_seconds)``; raises
    RunFailed if any worker reported an error.  Every child is joined or,
    failing that, terminated by its own process handle before returning.
    """
    ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    wctx = WorkerContext(ctx, len(consumers))
    procs = []
    results = {}
    errors = []
    names = [n for n, _, _ in consumers + producers]
    producer_names = {n for n, _, _ in producers}
    wall_start = time.monotonic()
    try:
        for name, target, opts in consumers + producers:
            proc = ctx.Process(target=_worker_main, args=(name, wctx, opts, target),
                               name="stomp-load-" + name, daemon=True)
            proc.start()
            procs.append(proc)

        ready = set()
        limit = time.monotonic() + args.setup_timeout
        while len(ready) < len(names) and not errors:
            try:
                kind, name, payload = wctx.events.get(timeout=max(limit - time.monotonic(), 0.01))
            except queue_module.Empty:
                errors.append("workers not ready after %ss: %s" % (
                    args.setup_timeout, sorted(set(names) - ready)))
                break
            if kind == EV_READY:
                ready.add(name)
            elif kind == EV_ERROR:
                errors.append("%s: %s" % (name, payload))
            else:
                results[name] = payload
        if errors:
            raise RunFailed("; ".join(errors))
        run_start = time.monotonic()
        wctx.start.set()

        # Workers enforce the duration limit themselves; this outer bound
        # only catches a wedged worker.
        limit = run_start + args.duration_limit + args.idle_timeout + args.drain + 20
        failed = set()
        while len(results) + len(failed) < len(names):
            try:
                kind, name, payload = wctx.events.get(timeout=max(limit - time.monotonic(), 0.01))
            except queue_module.Empty:
                errors.append("no result from %s" % sorted(set(names) - set(results) - failed))
                break
            if kind == EV_RESULT:
                results[name] = payload
                if producer_names <= set(results):
                    wctx.producers_done.set()
            elif kind == EV_ERROR:
                errors.append("%s: %s" % (name, payload))
                failed.add(name)
                wctx.abort.set()
                # Give the others a moment to notice and report, then stop.
                limit = min(limit, time.monotonic() + 10)
        if errors:
            raise RunFailed("; ".join(errors))
    finally:
        wctx.abort.set()
        join_until = time.monotonic() + (5 if errors else 15)
        for proc in procs:
            proc.join(max(0.1, join_until - time.monotonic()))
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
    wall = time.monotonic() - wall_start
    return ([results[n] for n, _, _ in consumers],
            [results[n] for n, _, _ in producers], wall)


def base_opts(args):
    """Connection and limit options every worker needs."""
    return {
        "host": args.host, "port": args.port, "login": args.login,
        "passcode": args.passcode, "vhost": args.vhost,
        "connect_timeout": args.connect_timeout, "setup_timeout": args.setup_timeout,
        "duration_limit": args.duration_limit, "idle_timeout": args.idle_timeout,
        "drain": args.drain, "receipt_every": args.receipt_every,
        "max_outstanding": args.max_outstanding, "batch": args.batch,
        "coalesce": args.coalesce_ms / 1000.0,
        "ws_port": args.ws_port, "ws_path": args.ws_path, "websocket": False,
    }


def split_counts(total, parts):
    """Split ``total`` messages over ``parts`` producers as evenly as possible."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def verify_consumers(consumer_results, expected_each):
    """Sum loss/duplicates/corruption over consumers that each expect every message."""
    lost = duplicates = corrupt = reordered = 0
    incomplete = []
    for res in consumer_results:
        lost += sum(expected_each) - sum(res["unique"])
        duplicates += res["duplicates"]
        corrupt += res["corrupt"]
        reordered += res["reordered"]
        if res["incomplete"]:
            incomplete.append("consumer %d: %s" % (res["consumer_index"], res["incomplete"]))
    return lost, duplicates, corrupt, reordered, incomplete


def scenario_fanout(args, run_id, websocket=False, two_node=False):
    """1 producer -> ``subscribers`` topic subscribers; every subscriber gets every message.

    With ``websocket`` the subscribers connect over WebSocket, and so does
    the producer with ``--ws-producer``.  With ``two_node`` the subscribers
    connect to ``--subscriber-broker`` (another node of the same broker)
    and the producer to ``--host``/``--port``, so every message crosses
    from one node to the other.
    """
    count = args.messages or args.fanout_messages
    scenario = "wsfanout" if websocket else "fanout-2node" if two_node else "fanout"
    destination = "/topic/bench.%s.%s" % (scenario, run_id)
    base = base_opts(args)
    sub_base = dict(base)
    if two_node:
        sub_base["host"], sub_base["port"] = args.subscriber_broker
    consumers = [
        ("sub%d" % i, consumer_worker, dict(
            sub_base, consumer_index=i, destination=destination, ack="auto",
            per_producer=[count], expected=count, shared_progress=False,
            measure_latency=False, return_bitmaps=False, prefetch=args.prefetch,
            websocket=websocket))
        for i in range(args.subscribers)
    ]
    producers = [("pub0", producer_worker, dict(
        base, producer_id=0, destination=destination, count=count,
        websocket=websocket and args.ws_producer))]
    cons, prods, wall = run_workers(args, consumers, producers)
    lost, dups, corrupt, reordered, incomplete = verify_consumers(cons, [count])
    prod = prods[0]
    delivered = sum(sum(c["unique"]) for c in cons)
    last = max((c["last_ns"] for c in cons), default=0)
    elapsed = max(last - prod["start_ns"], 1) / NS
    publish_elapsed = max(prod["end_ns"] - prod["start_ns"], 1) / NS
    per_sub = [sum(c["unique"]) / max(c["last_ns"] - prod["start_ns"], 1) * NS for c in cons]
    result = {
        "scenario": scenario, "destination": destination,
        "producers": 1, "subscribers": args.subscribers, "body_bytes": BODY_SIZE,
        "published": prod["sent"], "expected_deliveries": count * args.subscribers,
        "delivered": delivered, "lost": lost, "duplicates": dups, "corrupt": corrupt,
        "reordered": reordered, "incomplete": incomplete,
        "elapsed_s": round(elapsed, 3), "publish_elapsed_s": round(publish_elapsed, 3),
        "publish_rate": round(prod["sent"] / publish_elapsed, 1),
        "delivery_rate": round(delivered / elapsed, 1),
        "slowest_subscriber_rate": round(min(per_sub), 1) if per_sub else 0.0,
        "wall_s": round(wall, 3),
        "ok": not (lost or dups or corrupt or incomplete),
    }
    if two_node:
        result["producer_broker"] = "%s:%d" % (args.host, args.port)
        result["subscriber_broker"] = "%s:%d" % args.subscriber_broker
    if websocket:
        result["ws_url"] = "ws://%s:%d%s" % (args.host, args.ws_port, args.ws_path)
        result["ws_subprotocol"] = WS_SUBPROTOCOL
        result["producer_transport"] = "websocket" if args.ws_producer else "tcp"
    return result


def scenario_wsfanout(args, run_id):
    """``fanout`` with the subscribers (and with ``--ws-producer`` the producer) on WebSocket."""
    return scenario_fanout(args, run_id, websocket=True)


def scenario_fanout_2node(args, run_id):
    """``fanout`` with the producer on ``--host``/``--port`` and the subscribers on ``--subscriber-broker``."""
    return scenario_fanout(args, run_id, two_node=True)


# Variants of the queue scenario: the same load with a work-queue feature
# in use, to compare against the plain queue in one run.
QUEUE_VARIANTS = {
    # Every SEND asks for a persistent message: brokers with a durable store
    # write it there before confirming (stompd's memory store only carries
    # the header), which is what the Redis store will be measured by.
    "queue-persistent": {"send_headers": [("persistent", "true")]},
    # Every consumer subscribes with a visibility timeout long enough never
    # to run out: what the leases themselves cost.
    "queue-visibility": {"subscribe_headers": [("visibility", "60")]},
    # Producers send priorities 0-9 in turn.
    "queue-priority": {"cycled_header": "priority"},
    # The control for queue-priority: as many header bytes, which the broker
    # only carries, so that the two differ only in what priorities cost.
    "queue-header": {"cycled_header": "x-prio8"},
    # Consumers subscribe with ack:auto: no ACK frames, the broker forgets
    # a message once it is written to a consumer.
    "queue-auto": {"ack": "auto"},
}


def scenario_queue(args, run_id, variant="queue"):
    """``producers`` -> one queue -> ``consumers``; every message consumed exactly once."""
    total = args.messages or args.queue_messages
    counts = split_counts(total, args.producers)
    options = QUEUE_VARIANTS.get(variant, {})
    # A fresh name per run: the queue cannot hold leftovers of an earlier run.
    destination = "/queue/bench.%s.%s" % (variant, run_id)
    base = base_opts(args)
    consumers = [
        ("cons%d" % i, consumer_worker, dict(
            base, consumer_index=i, destination=destination, ack=options.get("ack", "client-individual"),
            subscribe_headers=options.get("subscribe_headers", []),
            prefetch=args.prefetch, per_producer=counts, expected=total,
            shared_progress=True, measure_latency=True, return_latencies=True,
            return_bitmaps=True,
            # With a small prefetch the broker stops sending until our ACKs
            # arrive, so sleeping between reads would throttle us, not batch.
            coalesce=base["coalesce"] if args.prefetch >= MIN_PREFETCH_TO_COALESCE else 0.0))
        for i in range(args.consumers)
    ]
    producers = [
        ("prod%d" % i, producer_worker, dict(
            base, producer_id=i, destination=destination, count=counts[i],
            cycled_header=options.get("cycled_header"),
            send_headers=options.get("send_headers", [])))
        for i in range(args.producers)
    ]
    cons, prods, wall = run_workers(args, consumers, producers)
    lost = dups = 0
    for p, n in enumerate(counts):
        # Bitmaps hold 0/1 per message; adding them as big integers adds them
        # byte by byte (fewer than 256 consumers, so no carries).
        summed = sum(int.from_bytes(c["bitmaps"][p], "little") for c in cons)
        merged = summed.to_bytes(n, "little") if n else b""
        zeros = merged.count(0)
        ones = merged.count(1)
        lost += zeros
        # Seen by more than one consumer: extra copies beyond the first.
        dups += sum(b - 1 for b in merged if b > 1) if n - zeros - ones else 0
    dups += sum(c["duplicates"] for c in cons)
    corrupt = sum(c["corrupt"] for c in cons)
    incomplete = ["consumer %d: %s" % (c["consumer_index"], c["incomplete"])
                  for c in cons if c["incomplete"]]
    start = min(p["start_ns"] for p in prods)
    last = max((c["last_ns"] for c in cons), default=0)
    elapsed = max(last - start, 1) / NS
    publish_elapsed = max(max(p["end_ns"] for p in prods) - start, 1) / NS
    consumed = total - lost
    # Send to receipt of every message consumed, over all consumers: under
    # full load this is mostly the time a message waits in the queue.
    latencies = array.array("q")
    for c in cons:
        latencies.frombytes(c["latencies_ns"])
    latency = latency_summary(sorted(latencies))
    return {
        "scenario": variant, "destination": destination,
        "send_headers": ["%s:%s" % kv for kv in options.get("send_headers", [])],
        "producers": args.producers, "consumers": args.consumers,
        "prefetch": args.prefetch, "ack": options.get("ack", "client-individual"), "body_bytes": BODY_SIZE,
        "published": sum(p["sent"] for p in prods), "consumed": consumed,
        "per_consumer": [c["received"] for c in cons],
        "lost": lost, "duplicates": dups, "corrupt": corrupt, "incomplete": incomplete,
        "elapsed_s": round(elapsed, 3), "publish_elapsed_s": round(publish_elapsed, 3),
        "publish_rate": round(sum(p["sent"] for p in prods) / publish_elapsed, 1),
        "rate": round(consumed / elapsed, 1),
        "latency_ms": {k: (round(v, 3) if v is not None else None) for k, v in latency.items()},
        "wall_s": round(wall, 3),
        "ok": not (lost or dups or corrupt or incomplete),
    }


def scenario_latency(args, run_id):
    """One paced producer -> one topic subscriber; latency distribution."""
    count = int(args.rate * args.latency_duration)
    destination = "/topic/bench.latency.%s" % run_id
    base = base_opts(args)
    consumers = [("sub0", consumer_worker, dict(
        base, consumer_index=0, destination=destination, ack="auto",
        per_producer=[count], expected=count, shared_progress=False,
        measure_latency=True, return_bitmaps=False, prefetch=args.prefetch,
        coalesce=0.0))]
    producers = [("pub0", paced_producer_worker, dict(
        base, producer_id=0, destination=destination, rate=args.rate,
        latency_duration=args.latency_duration))]
    cons, prods, wall = run_workers(args, consumers, producers)
    lost, dups, corrupt, reordered, incomplete = verify_consumers(cons, [count])
    prod = prods[0]
    send_span = max(prod["end_ns"] - prod["start_ns"], 1) / NS
    lat = cons[0]["latency_ms"]
    return {
        "scenario": "latency", "destination": destination, "body_bytes": BODY_SIZE,
        "target_rate": args.rate, "duration_s": args.latency_duration,
        "published": prod["sent"], "received": cons[0]["received"],
        "achieved_rate": round((prod["sent"] - 1) / send_span, 1) if prod["sent"] > 1 else 0.0,
        "latency_ms": {k: (round(v, 3) if v is not None else None) for k, v in lat.items()},
        "send_lag_p50_ms": round(prod["lag_p50_ms"], 3),
        "send_lag_p99_ms": round(prod["lag_p99_ms"], 3),
        "schedule_restarts": prod["schedule_restarts"],
        "send_lag_max_ms": round(prod["lag_max_ms"], 3),
        "lost": lost, "duplicates": dups, "corrupt": corrupt, "reordered": reordered,
        "incomplete": incomplete, "wall_s": round(wall, 3),
        "ok": not (lost or dups or corrupt or incomplete),
    }


# -- large messages --------------------------------------------------------

# 1 MiB bodies by default (--large-bytes): "<producer:6>:<sequence:10>:<send ns:19>:"
# then a fixed pattern, every byte of which the consumer checks.
LARGE_BYTES = 1 << 20
LARGE_PATTERN = bytes(range(256))


def large_pad(body_bytes):
    """The fixed part of a large body after its BODY_HEAD."""
    size = body_bytes - BODY_HEAD_SIZE
    return (LARGE_PATTERN * (size // len(LARGE_PATTERN) + 1))[:size]


class FrameReader:
    """Frames from a socket, each body received straight into one buffer.

    A frame with ``content-length`` (every broker sends one for these
    bodies) is read with ``recv_into`` up to its end, so a 1 MiB body is
    copied once, from the kernel; ``split_frames`` would rejoin the unread
    rest with every read instead.  ``next_frame`` returns ``(command,
    headers, body_start, body_end)`` into ``buffer``, valid until the next
    call.
    """

    def __init__(self, sock, initial=b"", size=4 << 20):
        self.sock = sock
        self.buffer = bytearray(max(size, len(initial) * 2))
        self.view = memoryview(self.buffer)
        self.buffer[:len(initial)] = initial
        self.start = 0
        self.end = len(initial)

    def _room(self, needed):
        """Make room for a frame of ``needed`` bytes from ``start``."""
        if self.start + needed <= len(self.buffer):
            return
        pending = self.end - self.start
        if needed > len(self.buffer):
            bigger = bytearray(needed * 2)
            bigger[:pending] = self.view[self.start:self.end]
            self.view.release()
            self.buffer, self.view = bigger, memoryview(bigger)
        else:
            # A copy first: the two ranges may overlap.
            self.buffer[:pending] = bytes(self.view[self.start:self.end])
        self.start, self.end = 0, pending

    def _read(self):
        got = self.sock.recv_into(self.view[self.end:])
        if not got:
            raise StompError("broker closed the connection")
        self.end += got

    def next_frame(self):
        while True:
            buffer = self.buffer
            while self.start < self.end and buffer[self.start] in (10, 13):
                self.start += 1
            head_end = buffer.find(b"\n\n", self.start, self.end)
            if head_end >= 0:
                break
            self._room(self.end - self.start + 64 * 1024)
            self._read()
        eol = buffer.find(b"\n", self.start)
        command = bytes(buffer[self.start:eol]).rstrip(b"\r")
        headers = bytes(buffer[eol:head_end + 1])
        # From here on, offsets from the frame's start: _room may move it.
        body_offset = head_end + 2 - self.start
        length = header_value(headers, b"content-length")
        if length is None:
            while (body_end := self.buffer.find(b"\x00", self.start + body_offset, self.end)) < 0:
                self._room(self.end - self.start + 64 * 1024)
                self._read()
        else:
            frame_size = body_offset + int(length) + 1
            self._room(frame_size)
            while self.end - self.start < frame_size:
                self._read()
            body_end = self.start + frame_size - 1
            if self.buffer[body_end] != 0:
                raise StompError("frame body not NUL-terminated after content-length")
        body_start = self.start + body_offset
        self.start = body_end + 1
        return command, headers, body_start, body_end


def large_producer_worker(name, wctx, opts):
    """Send ``count`` large messages, each written as head, body head and the
    shared pattern in one ``sendmsg`` (no copy of the body per message);
    every ``large_receipt_every``-th asks for a receipt, and at most
    ``max_outstanding`` may be unanswered."""
    conn = _open(opts)
    try:
        producer_id = opts["producer_id"]
        count = opts["count"]
        body_bytes = opts["body_bytes"]
        pad = large_pad(body_bytes)
        receipt_every = opts["large_receipt_every"]
        max_outstanding = opts["max_outstanding"]
        prefix = ("SEND\ndestination:%s\ncontent-length:%d\n" % (opts["destination"], body_bytes)).encode()
        outstanding = collections.deque()
        deadline = _wait_start(name, wctx, opts)
        sock = conn.sock
        start_ns = time.monotonic_ns()
        for seq in range(count):
            if (seq + 1) % receipt_every == 0 or seq == count - 1:
                rid = b"%d" % seq
                outstanding.append(rid)
                head = prefix + b"receipt:" + rid + b"\n\n"
            else:
                head = prefix + b"\n"
            parts = [head, BODY_HEAD % (producer_id, seq, time.monotonic_ns()), pad, b"\x00"]
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            _send_parts(sock, parts)
            if len(outstanding) > max_outstanding:
                _drain_receipts(conn, outstanding, max_outstanding, deadline)
            if wctx.abort.is_set():
                raise StompError("aborted")
        _drain_receipts(conn, outstanding, 0, deadline)
        return {"role": "producer", "producer_id": producer_id, "sent": count,
                "start_ns": start_ns, "end_ns": time.monotonic_ns()}
    finally:
        conn.disconnect()


def _send_parts(sock, parts):
    """``sendall`` of several buffers with ``sendmsg``, without joining them."""
    views = [memoryview(part) for part in parts]
    while views:
        sent = sock.sendmsg(views)
        while views and sent >= len(views[0]):
            sent -= len(views[0])
            views.pop(0)
        if views and sent:
            views[0] = views[0][sent:]


def large_consumer_worker(name, wctx, opts):
    """Receive ``expected`` large messages and check every byte of each."""
    conn = _open(opts)
    try:
        conn.subscribe("0", opts["destination"], "auto", [], time.monotonic() + opts["connect_timeout"])
        deadline = _wait_start(name, wctx, opts)
        body_bytes = opts["body_bytes"]
        pad = large_pad(body_bytes)
        expected = opts["expected"]
        seen = bytearray(expected)
        received = duplicates = corrupt = 0
        first_ns = last_ns = 0
        incomplete = None
        if conn.pending:
            raise StompError("unexpected %r before the run" % conn.pending[0][0])
        reader = FrameReader(conn.sock, conn.rest, size=2 * body_bytes + (1 << 16))
        conn.sock.settimeout(opts["idle_timeout"])
        while received < expected:
            if time.monotonic() > deadline:
                incomplete = "duration limit reached"
                break
            try:
                command, headers, start, end = reader.next_frame()
            except socket.timeout:
                incomplete = "nothing received for %.1fs" % opts["idle_timeout"]
                break
            if command == b"ERROR":
                raise StompError(error_text(headers, bytes(reader.buffer[start:min(end, start + 300)])))
            if command != b"MESSAGE":
                continue
            buffer = reader.buffer
            if end - start != body_bytes or not buffer.startswith(pad, start + BODY_HEAD_SIZE):
                corrupt += 1
            else:
                seq = int(buffer[start + 7:start + 17])
                if seq >= expected:
                    corrupt += 1
                elif seen[seq]:
                    duplicates += 1
                else:
                    seen[seq] = 1
            last_ns = time.monotonic_ns()
            first_ns = first_ns or last_ns
            received += 1
        conn.rest = bytes(reader.buffer[reader.start:reader.end])
        return {"role": "consumer", "consumer_index": opts["consumer_index"], "received": received,
                "duplicates": duplicates, "corrupt": corrupt, "reordered": 0, "first_ns": first_ns,
                "last_ns": last_ns, "incomplete": incomplete, "unique": [len(seen) - seen.count(0)]}
    finally:
        conn.disconnect()


def scenario_large(args, run_id, subscribers=0):
    """1 producer of large bodies -> 1 queue consumer (``large``), or -> ``subscribers``
    topic subscribers (``large-fanout``); reports MB/s delivered."""
    count = args.messages or (args.large_fanout_messages if subscribers else args.large_messages)
    scenario = "large-fanout" if subscribers else "large"
    destination = ("/topic/bench.%s.%s" if subscribers else "/queue/bench.%s.%s") % (scenario, run_id)
    base = dict(base_opts(args), body_bytes=args.large_bytes, large_receipt_every=args.large_receipt_every,
                max_outstanding=args.large_max_outstanding)
    consumers = [
        ("sub%d" % i, large_consumer_worker, dict(base, consumer_index=i, destination=destination, expected=count))
        for i in range(subscribers or 1)
    ]
    producers = [("pub0", large_producer_worker, dict(base, producer_id=0, destination=destination, count=count))]
    cons, prods, wall = run_workers(args, consumers, producers)
    lost, dups, corrupt, reordered, incomplete = verify_consumers(cons, [count])
    prod = prods[0]
    delivered = sum(sum(c["unique"]) for c in cons)
    elapsed = max(max(c["last_ns"] for c in cons) - prod["start_ns"], 1) / NS
    return {
        "scenario": scenario, "destination": destination, "producers": 1,
        "subscribers": len(consumers), "body_bytes": args.large_bytes,
        "published": prod["sent"], "delivered": delivered,
        "lost": lost, "duplicates": dups, "corrupt": corrupt, "reordered": reordered,
        "incomplete": incomplete, "elapsed_s": round(elapsed, 3),
        "delivery_rate": round(delivered / elapsed, 1),
        "delivered_mb_s": round(delivered * args.large_bytes / elapsed / 1e6, 1),
        "wall_s": round(wall, 3),
        "ok": not (lost or dups or corrupt or incomplete),
    }


SCENARIOS = {"fanout": scenario_fanout, "wsfanout": scenario_wsfanout,
             "fanout-2node": scenario_fanout_2node,
             "queue": scenario_queue,
             "queue-persistent": lambda args, run_id: scenario_queue(args, run_id, "queue-persistent"),
             "queue-visibility": lambda args, run_id: scenario_queue(args, run_id, "queue-visibility"),
             "queue-priority": lambda args, run_id: scenario_queue(args, run_id, "queue-priority"),
             "queue-header": lambda args, run_id: scenario_queue(args, run_id, "queue-header"),
             "queue-auto": lambda args, run_id: scenario_queue(args, run_id, "queue-auto"),
             "latency": scenario_latency,
             "large": scenario_large,
             "large-fanout": lambda args, run_id: scenario_large(args, run_id, args.subscribers)}


# -- reporting -------------------------------------------------------------


def fmt_rate(value):
    return "{:,.0f} msgs/s".format(value)


def describe(result):
    """Human-readable lines for one scenario result."""
    s = result["scenario"]
    lines = []
    if s in ("fanout", "wsfanout", "fanout-2node"):
        if s == "fanout-2node":
            lines.append("fanout-2node: 1 producer on %s -> %d subscribers on %s, topic %s, "
                         "%d-byte bodies" % (
                             result["producer_broker"], result["subscribers"],
                             result["subscriber_broker"], result["destination"],
                             result["body_bytes"]))
        elif s == "wsfanout":
            lines.append("wsfanout: 1 producer (%s) -> %d subscribers (WebSocket %s, %s) on %s, "
                         "%d-byte bodies" % (
                             "WebSocket" if result["producer_transport"] == "websocket" else "TCP",
                             result["subscribers"], result["ws_url"], result["ws_subprotocol"],
                             result["destination"], result["body_bytes"]))
        else:
            lines.append("fanout: 1 producer -> %d subscribers on %s, %d-byte bodies" % (
                result["subscribers"], result["destination"], result["body_bytes"]))
        lines.append("  published  {:>10,} msgs in {:7.2f} s = {} (until last receipt)".format(
            result["published"], result["publish_elapsed_s"], fmt_rate(result["publish_rate"])))
        lines.append("  delivered  {:>10,} msgs in {:7.2f} s = {} in total, slowest subscriber {}".format(
            result["delivered"], result["elapsed_s"], fmt_rate(result["delivery_rate"]),
            fmt_rate(result["slowest_subscriber_rate"])))
    elif s == "queue" or s in QUEUE_VARIANTS:
        sends = ", SEND with %s" % " ".join(result["send_headers"]) if result.get("send_headers") else ""
        lines.append(s + ": %d producers -> %d consumers on %s, %s, prefetch %d%s" % (
            result["producers"], result["consumers"], result["destination"], result["ack"], result["prefetch"],
            sends))
        lines.append("  published  {:>10,} msgs in {:7.2f} s = {} (until last receipt)".format(
            result["published"], result["publish_elapsed_s"], fmt_rate(result["publish_rate"])))
        lines.append("  consumed   {:>10,} msgs in {:7.2f} s = {} end to end".format(
            result["consumed"], result["elapsed_s"], fmt_rate(result["rate"])))
        lat = result.get("latency_ms") or {}
        if lat.get("count"):
            lines.append("  send to receipt ms: p50 {p50:.3f}  p99 {p99:.3f}  max {max:.3f}".format(**lat))
        lines.append("  per consumer: %s" % ", ".join("{:,}".format(n) for n in result["per_consumer"]))
    elif s in ("large", "large-fanout"):
        lines.append("%s: 1 producer -> %d %s on %s, %s-byte bodies" % (
            s, result["subscribers"], "topic subscribers" if s == "large-fanout" else "queue consumer",
            result["destination"], "{:,}".format(result["body_bytes"])))
        lines.append("  delivered  {:>10,} msgs in {:7.2f} s = {}, {:,.0f} MB/s".format(
            result["delivered"], result["elapsed_s"], fmt_rate(result["delivery_rate"]),
            result["delivered_mb_s"]))
    elif s == "latency":
        lat = result["latency_ms"]
        lines.append("latency: 1 paced producer -> 1 subscriber on %s, target %s for %gs" % (
            result["destination"], fmt_rate(result["target_rate"]), result["duration_s"]))
        lines.append("  sent {:,}, received {:,}, achieved {}".format(
            result["published"], result["received"], fmt_rate(result["achieved_rate"])))
        lines.append("  send lag behind schedule ms: p50 {:.3f}  p99 {:.3f}  max {:.3f}; "
                     "schedule restarted after {} stalls".format(
                         result["send_lag_p50_ms"], result["send_lag_p99_ms"],
                         result["send_lag_max_ms"], result["schedule_restarts"]))
        if lat.get("count"):
            lines.append("  latency ms: p50 {p50:.3f}  p90 {p90:.3f}  p99 {p99:.3f}  "
                         "p99.9 {p999:.3f}  max {max:.3f}  mean {mean:.3f}".format(**lat))
    if result["ok"]:
        extra = ""
        if result.get("reordered"):
            extra = " (%d delivered out of order)" % result["reordered"]
        lines.append("  verified: every message delivered exactly once%s" % extra)
    lines.append("  wall time %.1f s" % result["wall_s"])
    return "\n".join(lines)


def failure_banner(result):
    """A loud multi-line banner for a run that lost or duplicated messages."""
    what = []
    for key in ("lost", "duplicates", "corrupt"):
        if result.get(key):
            what.append("%s %s" % ("{:,}".format(result[key]), key))
    # Consumers usually fail for the same reason; say it once.
    reasons = collections.OrderedDict()
    for item in result.get("incomplete") or []:
        who, _, why = item.partition(": ")
        reasons.setdefault(why, []).append(who.split()[-1])
    what += ["%s (consumer %s)" % (why, ", ".join(who)) for why, who in reasons.items()]
    bar = "!" * 72
    return "\n".join([bar, "!!! %s FAILED VERIFICATION: %s" % (
        result["scenario"].upper(), "; ".join(what) or "unknown"), bar])


def parse_args(argv):
    """Command-line options."""
    p = argparse.ArgumentParser(
        description="STOMP 1.2 load generator: fanout, wsfanout (WebSocket), fanout-2node "
                    "(producer and subscribers on two nodes of one broker), queue (and "
                    "its variants, e.g. queue-persistent) and latency scenarios with "
                    "per-message verification.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=61613)
    p.add_argument("--ws-port", type=int, default=None,
                   help="the broker's STOMP-over-WebSocket port (stompd 15674, refbrokers.py's "
                        "RabbitMQ 15684); needed by wsfanout, which 'all' runs only when it is given")
    p.add_argument("--ws-path", default="/ws", help="WebSocket URL path (default /ws)")
    p.add_argument("--ws-producer", action="store_true",
                   help="wsfanout: the producer connects over WebSocket too (default: plain TCP "
                        "on --port, so only the subscribers' side differs from fanout)")
    p.add_argument("--subscriber-broker", default=None, metavar="HOST:PORT",
                   help="fanout-2node: the broker node the subscribers connect to (the producer "
                        "uses --host and --port); needed by fanout-2node, which 'all' runs only "
                        "when it is given")
    p.add_argument("--login", default="guest")
    p.add_argument("--passcode", default="guest")
    p.add_argument("--vhost", default="/", help="value of the CONNECT host header (default /)")
    p.add_argument("--scenario", default="all", choices=["all"] + list(SCENARIOS))
    p.add_argument("--messages", type=int, default=None,
                   help="messages published in fanout and in queue (sets both of the next two)")
    p.add_argument("--fanout-messages", type=int, default=20000,
                   help="messages the fanout producer sends (default 20000)")
    p.add_argument("--queue-messages", type=int, default=40000,
                   help="messages the queue producers send in all (default 40000)")
    p.add_argument("--subscribers", type=int, default=10, help="fanout subscribers (default 10)")
    p.add_argument("--large-messages", type=int, default=2000,
                   help="messages of the large scenario (default 2000)")
    p.add_argument("--large-fanout-messages", type=int, default=500,
                   help="messages of the large-fanout scenario, each to every subscriber (default 500)")
    p.add_argument("--large-bytes", type=int, default=LARGE_BYTES,
                   help="body size of the large scenarios (default 1 MiB)")
    p.add_argument("--large-receipt-every", type=int, default=4,
                   help="large scenarios: a receipt every this many SENDs (default 4)")
    p.add_argument("--large-max-outstanding", type=int, default=2,
                   help="large scenarios: unanswered receipts allowed (default 2)")
    p.add_argument("--producers", type=int, default=4, help="queue producers (default 4)")
    p.add_argument("--consumers", type=int, default=4, help="queue consumers (default 4)")
    p.add_argument("--prefetch", type=int, default=100,
                   help="queue consumer prefetch-count / activemq.prefetchSize (default 100)")
    p.add_argument("--rate", type=float, default=2000.0, help="latency send rate, msg/s (default 2000)")
    p.add_argument("--latency-duration", type=float, default=10.0,
                   help="latency scenario length in seconds (default 10)")
    p.add_argument("--receipt-every", type=int, default=500,
                   help="throughput producers ask for a RECEIPT every N messages (default 500)")
    p.add_argument("--max-outstanding", type=int, default=4,
                   help="unanswered receipts a producer may have before it waits (default 4)")
    p.add_argument("--batch", type=int, default=50, help="frames per socket write (default 50)")
    p.add_argument("--coalesce-ms", type=float, default=5.0,
                   help="throughput consumers sleep this long after a short read so data "
                        "batches up (default 5; not in latency, not in queue with --prefetch < %d)"
                        % MIN_PREFETCH_TO_COALESCE)
    p.add_argument("--duration-limit", type=float, default=60.0,
                   help="hard limit in seconds for each scenario's run phase (default 60)")
    p.add_argument("--idle-timeout", type=float, default=5.0,
                   help="after producers finish, give up when nothing arrives for this long (default 5)")
    p.add_argument("--drain", type=float, default=0.3,
                   help="keep reading this long after the last expected message, to catch duplicates")
    p.add_argument("--connect-timeout", type=float, default=10.0)
    p.add_argument("--setup-timeout", type=float, default=30.0,
                   help="seconds for all workers to connect and subscribe (default 30)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per scenario on stdout (text goes to stderr)")
    args = p.parse_args(argv)
    for name in ("messages", "fanout_messages", "queue_messages", "large_messages", "large_fanout_messages",
                 "subscribers", "producers",
                 "consumers", "prefetch", "receipt_every", "max_outstanding", "batch"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error("--%s must be at least 1" % name.replace("_", "-"))
    if args.consumers > 255:
        p.error("--consumers must be below 256")
    if args.rate <= 0 or args.latency_duration <= 0 or args.duration_limit <= 0:
        p.error("--rate, --latency-duration and --duration-limit must be positive")
    if args.scenario == "wsfanout" and args.ws_port is None:
        p.error("--scenario wsfanout needs --ws-port")
    if not args.ws_path.startswith("/"):
        p.error("--ws-path must start with /")
    if args.subscriber_broker is not None:
        host, sep, port = args.subscriber_broker.rpartition(":")
        if not sep or not port.isdigit():
            p.error("--subscriber-broker must be HOST:PORT, not %r" % args.subscriber_broker)
        args.subscriber_broker = (host.strip("[]") or "127.0.0.1", int(port))
    elif args.scenario == "fanout-2node":
        p.error("--scenario fanout-2node needs --subscriber-broker HOST:PORT")
    return args


def main(argv=None):
    """Run the chosen scenarios; exit 0, 1 (verification failed) or 2 (error)."""
    args = parse_args(argv)
    text = sys.stderr if args.json else sys.stdout
    if args.scenario != "all":
        names = [args.scenario]
    else:
        names = [n for n in SCENARIOS
                 if (n != "wsfanout" or args.ws_port is not None)
                 and (n != "fanout-2node" or args.subscriber_broker is not None)]
    status = EXIT_OK
    ws = " (WebSocket %s:%d%s)" % (args.host, args.ws_port, args.ws_path) if "wsfanout" in names else ""
    if "fanout-2node" in names:
        ws += " (fanout-2node subscribers on %s:%d)" % args.subscriber_broker
    print("broker %s:%d%s, scenarios: %s" % (args.host, args.port, ws, ", ".join(names)),
          file=text, flush=True)
    for name in names:
        run_id = uuid.uuid4().hex[:12]
        try:
            result = SCENARIOS[name](args, run_id)
        except RunFailed as exc:
            result = {"scenario": name, "ok": False, "error": str(exc)}
            print("%s: ERROR: %s" % (name, exc), file=text, flush=True)
            status = max(status, EXIT_ERROR)
        else:
            print(describe(result), file=text, flush=True)
            if not result["ok"]:
                banner = failure_banner(result)
                print(banner, file=text, flush=True)
                if text is not sys.stderr and not sys.stdout.isatty():
                    # Output is going to a file: make sure a person sees it too.
                    print(banner, file=sys.stderr, flush=True)
                status = max(status, EXIT_VERIFY_FAILED)
        result["broker"] = "%s:%d" % (args.host, args.port)
        if args.json:
            print(json.dumps(result, sort_keys=True), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
