"""
What a store needs to know to hand out a queue's messages for one
subscription: how long a delivery stays invisible, how often a message may
be delivered, where dead letters go, which channels the subscriber reads.

These are plain values passed to L{stompd.interfaces.IMessageStore.reserve},
so that every store applies the same rules; the store contract suite
(L{stompd.testing.store_contract}) holds them.
"""

from dataclasses import dataclass

# Why a message was dead-lettered, in its dead-letter-reason header.
MAX_DELIVERIES = "max-deliveries"
EXPIRED = "expired"
REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class DeadLetterQueue:
    """
    Where a queue's dead letters go.

    @ivar key: the store's name for the dead-letter queue.
    @ivar destination: its destination, as its subscribers see it in
        MESSAGE frames (e.g. C{/queue/jobs.DLQ}).
    """

    key: str
    destination: str


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """
    The rules for one subscription's deliveries.

    @ivar lease: seconds a delivered message stays invisible to everyone
        else before it is delivered again (the visibility timeout), or
        C{None} for as long as the consumer holds it.
    @ivar max_deliveries: deliveries after which a message that comes back
        is dead-lettered instead (reason C{max-deliveries}); 0 for no limit.
    @ivar dead_letter: where dead letters go; C{None} drops them.
    @ivar dead_letter_expired: expired messages are dead-lettered (reason
        C{expired}) rather than dropped.
    @ivar channel: a channel filter: an exact channel name, or a prefix
        followed by C{*}; C{None} reads every message of the queue, with or
        without a channel.
    """

    lease: float | None = None
    max_deliveries: int = 0
    dead_letter: DeadLetterQueue | None = None
    dead_letter_expired: bool = True
    channel: str | None = None

    def reads(self, channel: str | None) -> bool:
        """
        Does a subscription with this policy receive messages of C{channel}?
        """
        wanted = self.channel
        if wanted is None:
            return True
        if channel is None:
            return False
        if wanted.endswith("*"):
            return channel.startswith(wanted[:-1])
        return channel == wanted


DEFAULT_POLICY = DeliveryPolicy()
