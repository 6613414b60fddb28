"""
A subscription: one consumer of one destination, with the deliveries it
has not acknowledged yet.
"""

from collections import OrderedDict

AUTO = "auto"
CLIENT = "client"
CLIENT_INDIVIDUAL = "client-individual"
ACK_MODES = (AUTO, CLIENT, CLIENT_INDIVIDUAL)


class Subscription:
    """
    @ivar target: the L{stompd.interfaces.IDeliveryTarget} messages go to.
    @ivar id: the client's subscription id.
    @ivar destination: the destination string the client subscribed to.
    @ivar route: where it leads (L{stompd.broker.destination.Route}).
    @ivar ack_mode: one of L{ACK_MODES}.
    @ivar prefetch: the most unacknowledged queue messages it holds at once;
        C{None} for no limit (auto ack, where the connection's flow control
        is the limit).
    @ivar unacked: message id -> message, in delivery order.
    @ivar source: the queue or topic exchange feeding it, set by the broker.
    """

    __slots__ = (
        "target",
        "id",
        "destination",
        "route",
        "ack_mode",
        "prefetch",
        "unacked",
        "source",
        "frame_prefix",
    )

    def __init__(self, target, id: str, destination: str, route, ack_mode: str, prefetch: int | None) -> None:
        self.target = target
        self.id = id
        self.destination = destination
        self.route = route
        self.ack_mode = ack_mode
        self.prefetch = prefetch
        self.unacked: OrderedDict = OrderedDict()
        self.source = None
        # Set by the session: the encoded start of its MESSAGE frames.
        self.frame_prefix = b""

    def __repr__(self) -> str:
        return f"<Subscription {self.id!r} to {self.destination!r} ack={self.ack_mode}>"

    @property
    def acks(self) -> bool:
        """
        Does the client acknowledge deliveries?
        """
        return self.ack_mode != AUTO

    def credit(self) -> int:
        """
        How many more queue messages it may be given now.
        """
        if self.prefetch is None:
            return 1 << 30
        return self.prefetch - len(self.unacked)

    def covered(self, message_id: str) -> list[str]:
        """
        The ids an ACK or NACK of C{message_id} covers: that one for
        C{client-individual}, it and every earlier one for C{client}; empty
        if it is not pending here.
        """
        unacked = self.unacked
        if message_id not in unacked:
            return []
        if self.ack_mode != CLIENT:
            return [message_id]
        ids = []
        for pending in unacked:
            ids.append(pending)
            if pending == message_id:
                break
        return ids

    def settle(self, message_id: str) -> list:
        """
        Take the deliveries an ACK or NACK of C{message_id} covers off the
        unacknowledged list.

        @return: the messages settled, oldest first; empty if the id is not
            pending here.
        """
        return [self.unacked.pop(pending) for pending in self.covered(message_id)]
