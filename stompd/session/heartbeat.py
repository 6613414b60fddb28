"""
Heart-beats: the negotiation of the STOMP 1.1 specification, and the timers
that keep both directions honest.
"""

from stompd.errors import ProtocolError


def negotiate(header: str | None, config) -> tuple[int, int]:
    """
    Work out the heart-beat intervals from a CONNECT's C{heart-beat} header
    (C{None} when absent, or for STOMP 1.0) and the broker's configuration.

    @return: C{(send_every, expect_every)} in milliseconds: how often the
        broker sends beats and how often it hears from the client; 0 is
        never.
    @raise ProtocolError: for a malformed header.
    """
    if header is None:
        return 0, 0
    parts = header.split(",")
    if len(parts) != 2 or not all(part.strip().isdigit() for part in parts):
        raise ProtocolError("invalid heart-beat header", f"heart-beat must be two whole numbers, not {header!r}.")
    client_sends, client_wants = (int(part) for part in parts)
    send_every = 0 if not client_wants or not config.send else max(config.send, client_wants)
    expect_every = 0 if not client_sends or not config.receive else max(config.receive, client_sends)
    return send_every, expect_every


class HeartBeats:
    """
    Sends a beat whenever nothing else was sent for C{send_every} seconds,
    and calls C{timed_out} when nothing was received for C{silence_limit}
    seconds. Either may be 0 for off.

    Sent and received data is stamped with the clock's time rather than
    rescheduling a timer per frame, which would cost a timer operation on
    every message.
    """

    def __init__(self, clock, send_every: float, silence_limit: float, beat, timed_out) -> None:
        self._clock = clock
        self._send_every = send_every
        self._silence_limit = silence_limit
        self._beat = beat
        self._timed_out = timed_out
        self._stopped = False
        now = clock.seconds()
        self._last_sent = now
        self._last_received = now
        self._send_timer = clock.callLater(send_every, self._check_sent) if send_every else None
        self._receive_timer = clock.callLater(silence_limit, self._check_received) if silence_limit else None

    def sent(self) -> None:
        self._last_sent = self._clock.seconds()

    def received(self) -> None:
        self._last_received = self._clock.seconds()

    def _check_sent(self) -> None:
        now = self._clock.seconds()
        due = self._last_sent + self._send_every
        if now >= due:
            self._beat()
            self._last_sent = now
            due = now + self._send_every
        self._send_timer = self._clock.callLater(due - now, self._check_sent)

    def _check_received(self) -> None:
        now = self._clock.seconds()
        due = self._last_received + self._silence_limit
        if now >= due:
            # The session may go on (it was not reading, so the silence was
            # its own); it stops us when it closes.
            self._timed_out()
            due = now + self._silence_limit
            if self._stopped:
                return
        self._receive_timer = self._clock.callLater(due - now, self._check_received)

    def stop(self) -> None:
        self._stopped = True
        for timer in (self._send_timer, self._receive_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self._send_timer = self._receive_timer = None

