"""
Batching queue dispatch, and what is written to clients, over a burst of
frames.
"""


class DispatchGate:
    """
    Lets everything one read from a client brought (often dozens of SENDs or
    ACKs) change the queues first, and dispatch once: while the gate is
    held, a queue that wants to dispatch is noted, and dispatches when the
    last holder lets go. One dispatch then takes a batch from the store
    instead of one message per frame.

    What is written to clients meanwhile (the MESSAGEs of those
    dispatches, the RECEIPTs of those frames) is kept by each session that
    asks (L{flush_later}) and written in one piece per connection once the
    burst is over, at once rather than at the reactor's next turn.
    """

    def __init__(self) -> None:
        self._holders = 0
        # While the last holder's release dispatches and flushes.
        self._releasing = False
        # Ordered sets: queues dispatch, and sessions flush, in the order
        # they asked.
        self._waiting: dict = {}
        self._flushing: dict = {}

    def hold(self) -> None:
        self._holders += 1

    def release(self) -> None:
        self._holders -= 1
        if self._holders or self._releasing:
            # The release in progress dispatches what this one noted.
            return
        self._releasing = True
        try:
            while self._waiting or self._flushing:
                while self._waiting:
                    waiting, self._waiting = self._waiting, {}
                    for queue in waiting:
                        queue.wake()
                flushing, self._flushing = self._flushing, {}
                for target in flushing:
                    target.flush()
        finally:
            self._releasing = False

    def defer(self, queue) -> bool:
        """
        If the gate is held, note that C{queue} wants to dispatch.

        @return: whether it was deferred.
        """
        if not self._holders:
            return False
        self._waiting[queue] = None
        return True

    @property
    def batching(self) -> bool:
        """
        Whether a burst is being handled or dispatched: what is written to
        clients now may wait for its end (L{flush_later}).
        """
        return self._holders > 0 or self._releasing

    def flush_later(self, target) -> None:
        """
        Call C{target.flush()} when the burst is over: once the queues it
        made want to dispatch have done so.
        """
        self._flushing[target] = None
