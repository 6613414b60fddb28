"""
The systemd notifier with a fake NOTIFY_SOCKET (a datagram socket of the
test's own) and a Clock: READY=1, STATUS=, WATCHDOG=1 and STOPPING=1.
"""

import os
import socket

import pytest
from twisted.internet.task import Clock

from stompd.systemd import STATUS_INTERVAL, SystemdNotifier


class Broker:
    def __init__(self, sessions: int) -> None:
        self.sessions = set(range(sessions))


@pytest.fixture
def notify_socket(tmp_path):
    path = str(tmp_path / "notify")
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listening.bind(path)
    listening.settimeout(1.0)
    yield path, listening
    listening.close()


def received(listening) -> list[str]:
    messages = []
    listening.setblocking(False)
    try:
        while True:
            messages.append(listening.recv(4096).decode())
    except BlockingIOError:
        pass
    return messages


def test_ready_status_watchdog_and_stopping(notify_socket):
    path, listening = notify_socket
    clock = Clock()
    broker = Broker(2)
    notifier = SystemdNotifier(clock, broker, {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000"})
    notifier.startService()
    (ready,) = received(listening)
    assert ready.splitlines() == ["READY=1", "STATUS=2 connections", f"MAINPID={os.getpid()}"]
    clock.advance(2.0)
    assert received(listening) == ["WATCHDOG=1"]
    broker.sessions = {1}
    clock.advance(STATUS_INTERVAL - 2.0)
    assert "STATUS=1 connection" in received(listening)
    notifier.stopService()
    assert received(listening) == ["STOPPING=1\nSTATUS=stopping, 1 connection"]
    clock.advance(60)
    assert received(listening) == []


def test_a_watchdog_for_another_process_is_not_fed(notify_socket):
    path, listening = notify_socket
    clock = Clock()
    notifier = SystemdNotifier(clock, Broker(0), {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"})
    notifier.startService()
    received(listening)
    clock.advance(5)
    assert "WATCHDOG=1" not in received(listening)
    notifier.stopService()


def test_without_notify_socket_nothing_is_sent():
    clock = Clock()
    notifier = SystemdNotifier(clock, Broker(0), {"WATCHDOG_USEC": "1000000"})
    notifier.startService()
    # No socket opened and nothing scheduled: not run by systemd.
    assert notifier._socket is None
    assert clock.getDelayedCalls() == []
    notifier.stopService()
