"""
Repeated calls of discovery agents, started and stopped together.
"""

from twisted.internet.task import LoopingCall


class Repeating:
    """
    Calls made every so often on a clock until L{stop}; a call that fails
    is logged and not made again.
    """

    def __init__(self, clock, log, what: str) -> None:
        self._clock = clock
        self._log = log
        self._what = what
        self._loops: list[LoopingCall] = []

    def every(self, interval: float, call) -> None:
        """
        Call C{call} now, then every C{interval} seconds (its Deferred, if
        it returns one, waited for).
        """
        loop = LoopingCall(call)
        loop.clock = self._clock
        loop.start(interval, now=True).addErrback(lambda failure: self._log.failure(self._what, failure))
        self._loops.append(loop)

    def stop(self) -> None:
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops.clear()
