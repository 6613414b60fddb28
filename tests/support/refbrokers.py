"""
Real RabbitMQ and ActiveMQ brokers for tests: private instances on free
loopback ports, started and stopped by process id through
C{benchmarks/refbrokers.py}, which the benchmarks use too.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.broker import free_port

REFBROKERS = Path(__file__).resolve().parents[2] / "benchmarks" / "refbrokers.py"

# What each broker needs installed (CI installs it; elsewhere its tests skip).
INSTALLED = {
    "rabbitmq": "/usr/lib/rabbitmq/bin/rabbitmq-server",
    "activemq": "/usr/share/activemq/bin/activemq.jar",
}


def need_broker(name: str) -> None:
    """
    Skip the test when broker C{name} is not installed, except under CI,
    which installs it and must not skip.
    """
    if not os.path.exists(INSTALLED[name]):
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed; .ci/run installs it")
        pytest.skip(f"{name} is not installed")


class ReferenceBroker:
    """
    One running RabbitMQ (with its STOMP plugin) or ActiveMQ, guest/guest.

    @ivar port: its STOMP port on 127.0.0.1.
    """

    def __init__(self, name: str, state_dir: Path, timeout: float = 180.0) -> None:
        need_broker(name)
        self.name = name
        self.state_dir = state_dir
        self.port = free_port()
        args = ["--stomp-port", str(self.port), "--state-dir", str(state_dir), "--timeout", str(timeout)]
        if name == "rabbitmq":
            args += ["--web-stomp-port", str(free_port())]
        started = self._run("start", *args, timeout=timeout + 60)
        if started.returncode != 0:
            raise RuntimeError(f"{name} did not start: {started.stderr[-3000:]}")

    def _run(self, action: str, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(REFBROKERS), action, self.name, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def stop(self) -> None:
        self._run("stop", "--state-dir", str(self.state_dir))
