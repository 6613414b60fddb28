"""
Integration fixtures: a real stompd process, started with the installed
C{twistd stompd} on a free loopback port, and real stomp.py clients.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import stomp

TWISTD = str(Path(sys.executable).with_name("twistd"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"broker exited with {process.returncode}: {process.stdout.read()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"broker did not listen on {port}")


class BrokerProcess:
    """
    A C{twistd -n stompd} child process.
    """

    def __init__(self, tmp_path: Path, config: str = "", args: tuple = ()) -> None:
        self.port = free_port()
        config_path = tmp_path / "stompd.toml"
        config_path.write_text(config)
        self.log_path = tmp_path / "stompd.log"
        self.process = subprocess.Popen(
            [TWISTD, "-n", "--pidfile=", "stompd", "--config", str(config_path),
             "--listen", f"tcp:{self.port}:interface=127.0.0.1", *args],
            stdout=open(self.log_path, "w"),
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
        self.process.stdout = open(self.log_path)
        wait_for_port(self.port, self.process)

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """
    One broker per test module, with short heart-beat floors so heart-beat
    tests run quickly.
    """
    tmp_path = tmp_path_factory.mktemp("broker")
    running = BrokerProcess(
        tmp_path,
        "[heart-beat]\nsend = 100\nreceive = 100\ngrace = 3.0\n",
    )
    yield running
    running.stop()


class Collector(stomp.ConnectionListener):
    """
    Collects what a stomp.py connection receives.
    """

    def __init__(self) -> None:
        self.messages = []
        self.errors = []
        self.receipts = []
        self.disconnected = False

    def on_message(self, frame):
        self.messages.append(frame)

    def on_error(self, frame):
        self.errors.append(frame)

    def on_receipt(self, frame):
        self.receipts.append(frame.headers["receipt-id"])

    def on_disconnected(self):
        self.disconnected = True

    def wait_for(self, predicate, timeout: float = 5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return predicate()


@pytest.fixture
def connect(broker):
    """
    Make connected stomp.py clients; all are disconnected at teardown.
    """
    made = []

    def make(version: str = "1.2", heartbeats=(0, 0), login="guest", passcode="guest", **kwargs):
        cls = {"1.0": stomp.Connection10, "1.1": stomp.Connection11, "1.2": stomp.Connection12}[version]
        if version == "1.0":
            conn = cls([("127.0.0.1", broker.port)], **kwargs)
        else:
            conn = cls([("127.0.0.1", broker.port)], heartbeats=heartbeats, **kwargs)
        listener = Collector()
        conn.set_listener("collector", listener)
        conn.connect(login, passcode, wait=True)
        conn.collector = listener
        made.append(conn)
        return conn

    yield make
    for conn in made:
        try:
            if conn.is_connected():
                conn.disconnect()
        except Exception:
            pass
