"""
The helpers that go on at once when a store has already answered, and
chain when it has not.
"""

import pytest

from twisted.internet.defer import Deferred, fail, succeed

from stompd.broker.immediate import NOT_YET, as_deferred, pending, result_now, start, then


def test_a_fired_deferred_gives_its_result_now():
    assert result_now(succeed(7)) == 7
    assert result_now(succeed(None)) is None


def test_a_deferred_without_a_result_is_not_yet():
    assert result_now(Deferred()) is NOT_YET


def test_a_failure_stays_for_the_errbacks():
    failed = fail(ValueError("no"))
    assert result_now(failed) is NOT_YET
    errors = []
    failed.addErrback(errors.append)
    assert errors[0].check(ValueError)


def test_a_deferred_waiting_on_another_is_not_yet():
    inner = Deferred()
    outer = succeed(1)
    outer.addCallback(lambda _: inner)
    assert result_now(outer) is NOT_YET
    inner.callback(2)
    assert result_now(outer) == 2


def test_then_calls_at_once_with_a_result():
    assert then(succeed(2), lambda value, add: value + add, 3) == 5


def test_then_raises_what_the_callback_raises():
    def refuse(value):
        raise KeyError(value)

    with pytest.raises(KeyError):
        then(succeed(1), refuse)


def test_then_chains_without_a_result():
    later = Deferred()
    chained = then(later, lambda value: value * 2)
    assert chained is later
    later.callback(4)
    assert result_now(chained) == 8


def test_pending_is_none_once_done():
    assert pending(succeed(1)) is None
    waiting = Deferred()
    assert pending(waiting) is waiting


def test_a_coroutine_on_fired_deferreds_finishes_in_the_call():
    steps = []

    async def work():
        steps.append(await succeed(1))
        steps.append(await succeed(2))

    assert start(work()) is None
    assert steps == [1, 2]


def test_a_coroutine_that_raises_at_once_raises():
    async def work():
        await succeed(None)
        raise ValueError("bad")

    with pytest.raises(ValueError):
        start(work())


def test_a_coroutine_that_waits_ends_with_its_deferred():
    later = Deferred()
    steps = []

    async def work():
        steps.append(await succeed(1))
        steps.append(await later)
        steps.append(await succeed(3))
        return "done"

    ending = start(work())
    assert steps == [1]
    assert result_now(ending) is NOT_YET
    later.callback(2)
    assert steps == [1, 2, 3]
    assert result_now(ending) == "done"


def test_as_deferred_gives_a_deferred_for_done():
    assert result_now(as_deferred(None)) is None
    waiting = Deferred()
    assert as_deferred(waiting) is waiting
