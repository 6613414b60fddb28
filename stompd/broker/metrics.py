"""
What the broker counts, for the metrics endpoint: plain integers bumped on
the hot paths (a dict lookup and an add), read only when scraped.
"""

from collections import Counter


class BrokerCounters:
    """
    Counters of one broker process, since it started.

    @ivar connections_opened: by transport (C{tcp}, C{websocket}).
    @ivar connections_closed: by transport.
    @ivar frames_received: by command.
    @ivar frames_sent: by command.
    @ivar bytes_received: by transport.
    @ivar bytes_sent: by transport.
    @ivar messages: by event: C{published}, C{delivered}, C{redelivered},
        C{acked}, C{nacked}.
    @ivar errors: ERROR frames sent, by their C{message}.
    """

    def __init__(self) -> None:
        self.connections_opened: Counter = Counter()
        self.connections_closed: Counter = Counter()
        self.frames_received: Counter = Counter()
        self.frames_sent: Counter = Counter()
        self.bytes_received: Counter = Counter()
        self.bytes_sent: Counter = Counter()
        self.messages: Counter = Counter()
        self.errors: Counter = Counter()
