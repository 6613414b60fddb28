"""
Batching queue dispatch over a burst of frames.
"""


class DispatchGate:
    """
    Lets everything one read from a client brought (often dozens of SENDs or
    ACKs) change the queues first, and dispatch once: while the gate is
    held, a queue that wants to dispatch is noted, and dispatches when the
    last holder lets go. One dispatch then takes a batch from the store
    instead of one message per frame.
    """

    def __init__(self) -> None:
        self._holders = 0
        # An ordered set: queues dispatch in the order they asked.
        self._waiting: dict = {}

    def hold(self) -> None:
        self._holders += 1

    def release(self) -> None:
        self._holders -= 1
        if self._holders:
            return
        while self._waiting:
            waiting, self._waiting = self._waiting, {}
            for queue in waiting:
                queue.wake()

    def defer(self, queue) -> bool:
        """
        If the gate is held, note that C{queue} wants to dispatch.

        @return: whether it was deferred.
        """
        if not self._holders:
            return False
        self._waiting[queue] = None
        return True
