"""
The service tree's start order: the broker's store is ready before any
listener accepts a client, and a store that cannot start ends start-up.
"""

import gc

import pytest
from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock

from stompd.errors import ConfigError
from stompd.tap import GC_YOUNG_THRESHOLD, OrderedStartService, collect_less


class Recorded(Service):
    """
    A service that notes when it starts, and starts as C{result} says.
    """

    def __init__(self, name: str, started: list, result=None) -> None:
        self.name = name
        self._started = started
        self._result = result

    def startService(self):
        Service.startService(self)
        self._started.append(self.name)
        return self._result


def test_children_wait_for_the_one_before():
    started = []
    store_ready = Deferred()
    top = OrderedStartService(Clock())
    Recorded("broker", started, store_ready).setServiceParent(top)
    Recorded("listener", started).setServiceParent(top)
    top.startService()
    assert started == ["broker"]
    store_ready.callback(None)
    assert started == ["broker", "listener"]
    assert top.started.called


def test_a_child_failing_later_ends_start_up_with_its_message():
    failures = []
    store_ready = Deferred()
    top = OrderedStartService(Clock(), on_failure=lambda reactor, problem: failures.append(problem))
    started = []
    Recorded("broker", started, store_ready).setServiceParent(top)
    Recorded("listener", started).setServiceParent(top)
    top.startService()
    store_ready.errback(ConfigError("storage.redis: cannot connect to redis://127.0.0.1:1/0"))
    assert failures == ["storage.redis: cannot connect to redis://127.0.0.1:1/0"]
    assert started == ["broker"]
    # Stopping what never started is fine.
    top.stopService()


def test_a_child_failing_at_once_exits_with_one_line():
    top = OrderedStartService(Clock())
    Recorded("broker", [], fail(ConfigError("storage: broken"))).setServiceParent(top)
    with pytest.raises(SystemExit, match="^stompd: storage: broken$"):
        top.startService()


@pytest.fixture
def collector_restored():
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_the_collector_runs_less_often_and_skips_what_start_up_made(collector_restored):
    frozen_before = gc.get_freeze_count()
    collect_less()
    assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD
    assert gc.get_freeze_count() > frozen_before
    # Cycles made later are still collected.
    cycle = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1
