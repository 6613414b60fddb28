"""
Going on at once when a store has already answered.

Store calls return Deferreds. The memory store's have always fired by the
time they are returned, and chaining a callback to a fired Deferred costs
more than most store calls on the message path do. These helpers go on in
the same call when the result is already there, and chain as usual when it
is not, so that one piece of code serves a store that answers at once and
one that answers later.

What they return is C{None} for "done already", or a Deferred of the end.
"""

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.python.failure import Failure

# What L{result_now} returns for a Deferred without a result yet.
NOT_YET = object()


def result_now(deferred: Deferred):
    """
    The result of C{deferred} if it has already succeeded and is not
    waiting on another Deferred; else L{NOT_YET}. A failure is left in it
    for its errbacks: failing is not the fast path.
    """
    if deferred.called and not deferred.paused:
        result = deferred.result
        if not isinstance(result, Failure):
            return result
    return NOT_YET


def then(deferred: Deferred, callback, *args):
    """
    C{callback(result, *args)} now if C{deferred} has already succeeded,
    returning what it returns (raising what it raises); else
    C{deferred.addCallback(callback, *args)}.
    """
    result = result_now(deferred)
    if result is NOT_YET:
        return deferred.addCallback(callback, *args)
    return callback(result, *args)


def pending(deferred: Deferred) -> Deferred | None:
    """
    C{None} if C{deferred} has already succeeded, else C{deferred}.
    """
    return None if result_now(deferred) is not NOT_YET else deferred


def start(coroutine) -> Deferred | None:
    """
    Run C{coroutine} as far as it goes now: C{None} if it finished,
    raising what it raised; else a Deferred of its end, from where it waits
    (as L{Deferred.fromCoroutine} would give). A coroutine awaiting only
    Deferreds that have fired finishes in this call.
    """
    try:
        coroutine.send(None)
    except StopIteration:
        return None
    # Resumed, it awaits the same Deferred again, which fromCoroutine then
    # waits for.
    return Deferred.fromCoroutine(coroutine)


def together(outcomes: list) -> Deferred | None:
    """
    C{None} if every one of C{outcomes} (of these helpers) is done, else a
    Deferred firing once all are, or failing as the first that fails.
    """
    waiting = [outcome for outcome in outcomes if outcome is not None]
    if not waiting:
        return None
    if len(waiting) == 1:
        return waiting[0]
    joined = DeferredList(waiting, fireOnOneErrback=True, consumeErrors=True)
    return joined.addCallbacks(lambda _: None, lambda failure: failure.value.subFailure)


def as_deferred(outcome: Deferred | None) -> Deferred:
    """
    A Deferred for an outcome of these helpers, for callers that want one.
    """
    return succeed(None) if outcome is None else outcome
