"""
Connection limits: how many connections the broker, and one peer address,
may have at once, and how fast one address may open them. A connection
over a limit gets an ERROR before its CONNECT is read.
"""

from collections import deque

from twisted.logger import Logger

from stompd.errors import StompError

# Seconds between two log lines about one limit.
LOG_INTERVAL = 60.0
# Addresses remembered for the rate limit before old ones are dropped.
_ADDRESSES_LIMIT = 10_000


def peer_address(peer) -> str:
    """
    The address of a connection's peer, C{"local"} for a UNIX socket.
    """
    return getattr(peer, "host", None) or "local"


class LimitLog:
    """
    Logs a limit's hits at most once per L{LOG_INTERVAL}, with how many
    there were, and counts them (C{hits}) for metrics.
    """

    log = Logger()

    def __init__(self, clock) -> None:
        self._clock = clock
        self.hits: dict[str, int] = {}
        self._logged: dict[str, tuple[float, int]] = {}

    def hit(self, limit: str, detail: str) -> None:
        self.hits[limit] = self.hits.get(limit, 0) + 1
        now = self._clock.seconds()
        last = self._logged.get(limit)
        if last is None or now - last[0] >= LOG_INTERVAL:
            since = self.hits[limit] - (last[1] if last else 0)
            self.log.warn("Limit {limit} hit {count} times since last said: {detail}", limit=limit, count=since, detail=detail)
            self._logged[limit] = (now, self.hits[limit])


class Admission:
    """
    Admits connections by C{[limits]}.
    """

    def __init__(self, limits, clock) -> None:
        self._limits = limits
        self._clock = clock
        self.log = LimitLog(clock)
        self._open = 0
        self._per_address: dict[str, int] = {}
        self._recent: dict[str, deque] = {}

    def admit(self, address: str) -> StompError | None:
        """
        Count a new connection from C{address} (its L{peer_address}) in, or
        say why it is refused. Every admitted connection is L{release}d once.
        """
        limits = self._limits
        if limits.max_connections and self._open >= limits.max_connections:
            self.log.hit("max-connections", f"{limits.max_connections} connections open; refused {address}")
            return StompError("too many connections", f"This broker takes {limits.max_connections} connections at once.")
        count = self._per_address.get(address, 0)
        if limits.max_connections_per_address and count >= limits.max_connections_per_address:
            self.log.hit("max-connections-per-address", f"{count} connections from {address}")
            return StompError(
                "too many connections from your address",
                f"This broker takes {limits.max_connections_per_address} connections at once from one address.",
            )
        if limits.connection_rate and not self._within_rate(address):
            self.log.hit("connection-rate", f"{address} connects faster than {limits.connection_rate} a second")
            return StompError(
                "connecting too fast", f"One address may open {limits.connection_rate} connections a second."
            )
        self._open += 1
        self._per_address[address] = count + 1
        return None

    def _within_rate(self, address: str) -> bool:
        now = self._clock.seconds()
        recent = self._recent.get(address)
        if recent is None:
            if len(self._recent) >= _ADDRESSES_LIMIT:
                self._forget_idle(now)
            recent = self._recent[address] = deque()
        while recent and recent[0] <= now - 1.0:
            recent.popleft()
        if len(recent) >= self._limits.connection_rate:
            return False
        recent.append(now)
        return True

    def _forget_idle(self, now: float) -> None:
        for address, recent in list(self._recent.items()):
            if not recent or recent[-1] <= now - 1.0:
                del self._recent[address]

    def release(self, address: str) -> None:
        """
        An admitted connection from C{address} is gone.
        """
        self._open -= 1
        count = self._per_address.get(address, 1) - 1
        if count:
            self._per_address[address] = count
        else:
            self._per_address.pop(address, None)
