"""
A subscription: one consumer of one destination, with the deliveries it
has not acknowledged yet.
"""

from collections import OrderedDict

from stompd.broker.policy import DEFAULT_POLICY

AUTO = "auto"
CLIENT = "client"
CLIENT_INDIVIDUAL = "client-individual"
ACK_MODES = (AUTO, CLIENT, CLIENT_INDIVIDUAL)

# Ack ids of deliveries whose lease ran out are remembered, so that their
# late ACK or NACK is recognised rather than refused; a consumer that never
# answers must not grow memory.
LAPSED_LIMIT = 10_000


class Delivery:
    """
    One queue message written to a subscriber, awaiting its ACK or NACK.

    @ivar message: the L{stompd.broker.message.Message}.
    @ivar count: its delivery count when written: with its id, what names
        this delivery in the store.
    @ivar lease_until: when its visibility timeout ends, or C{None}.
    """

    __slots__ = ("message", "count", "lease_until")

    def __init__(self, message, count: int, lease_until: float | None) -> None:
        self.message = message
        self.count = count
        self.lease_until = lease_until


class Subscription:
    """
    @ivar target: the L{stompd.interfaces.IDeliveryTarget} messages go to.
    @ivar id: the client's subscription id.
    @ivar destination: the destination string the client subscribed to.
    @ivar route: where it leads (L{stompd.broker.destination.Route}).
    @ivar ack_mode: one of L{ACK_MODES}.
    @ivar acks: whether the client acknowledges deliveries (not C{auto}).
    @ivar prefetch: the most unacknowledged queue messages it holds at once;
        C{None} for no limit (auto ack, where the connection's flow control
        is the limit).
    @ivar acks_by_delivery: ACKs name a delivery (STOMP 1.2's C{ack}
        header) rather than a message (C{message-id}).
    @ivar policy: the L{stompd.broker.policy.DeliveryPolicy} of its queue
        deliveries.
    @ivar unacked: ack id -> what its source needs to settle it (a
        L{Delivery} for queues, the message for topics), in delivery order.
    @ivar lapsed: ack ids whose visibility timeout ran out, oldest first.
    @ivar lease_timer: the timer for the oldest lease, set by the queue.
    @ivar source: the queue or topic exchange feeding it, set by the broker.
    @ivar durable: for a durable topic subscription, the route of the queue
        that holds its messages while it is away; else C{None}.
    @ivar read_check: C{None}, or a callable saying whether the subscriber
        may read a message's destination (see L{stompd.broker.authorization}).
    """

    __slots__ = (
        "target",
        "id",
        "destination",
        "route",
        "ack_mode",
        "acks",
        "prefetch",
        "acks_by_delivery",
        "policy",
        "unacked",
        "lapsed",
        "lease_timer",
        "source",
        "frame_prefix",
        "durable",
        "read_check",
    )

    def __init__(
        self,
        target,
        id: str,
        destination: str,
        route,
        ack_mode: str,
        prefetch: int | None,
        acks_by_delivery: bool = True,
        policy=DEFAULT_POLICY,
    ) -> None:
        self.target = target
        self.id = id
        self.destination = destination
        self.route = route
        self.ack_mode = ack_mode
        # Does the client acknowledge deliveries? Read for every message.
        self.acks = ack_mode != AUTO
        self.prefetch = prefetch
        self.acks_by_delivery = acks_by_delivery
        self.policy = policy
        self.unacked: OrderedDict = OrderedDict()
        self.lapsed: OrderedDict = OrderedDict()
        self.lease_timer = None
        self.source = None
        # Set by the session: the encoded start of its MESSAGE frames.
        self.frame_prefix = b""
        self.durable = None
        # For a wildcard topic subscription the user may read only part of:
        # whether a message's destination is readable.
        self.read_check = None

    def __repr__(self) -> str:
        return f"<Subscription {self.id!r} to {self.destination!r} ack={self.ack_mode}>"

    def ack_id(self, message) -> str:
        """
        What the client's ACK or NACK of C{message}'s current delivery
        names it by.
        """
        return message.ack_id() if self.acks_by_delivery else message.id

    def credit(self) -> int:
        """
        How many more queue messages it may be given now.
        """
        if self.prefetch is None:
            return 1 << 30
        return self.prefetch - len(self.unacked)

    def covered(self, ack_id: str) -> list[str]:
        """
        The ids an ACK or NACK of C{ack_id} covers: that one for
        C{client-individual}, it and every earlier one for C{client}; empty
        if it is not pending here.
        """
        unacked = self.unacked
        if ack_id not in unacked:
            return []
        if self.ack_mode != CLIENT:
            return [ack_id]
        ids = []
        for pending in unacked:
            ids.append(pending)
            if pending == ack_id:
                break
        return ids

    def settle(self, ack_id: str) -> list:
        """
        Take the deliveries an ACK or NACK of C{ack_id} covers off the
        unacknowledged list.

        @return: what was settled (see L{unacked}), oldest first; empty if
            the id is not pending here.
        """
        return [self.unacked.pop(pending) for pending in self.covered(ack_id)]

    def lapse(self, ack_id: str) -> None:
        """
        The lease of delivery C{ack_id} ran out: remember it as late.
        """
        lapsed = self.lapsed
        lapsed[ack_id] = None
        if len(lapsed) > LAPSED_LIMIT:
            lapsed.popitem(last=False)
