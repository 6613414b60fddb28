"""
A real stompd: the installed C{twistd stompd} as a child process on free
loopback ports.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

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


def wait_for_log(broker: "BrokerProcess", text: str, count: int = 1, timeout: float = 10.0) -> None:
    """
    Wait until C{broker}'s log holds C{text} C{count} times.
    """
    deadline = time.monotonic() + timeout
    while broker.log.count(text) < count:
        assert time.monotonic() < deadline, f"{text!r} not logged {count} times:\n{broker.log[-3000:]}"
        time.sleep(0.05)


class PortTaken(RuntimeError):
    """
    The broker could not listen on the free port it was given.
    """


class BrokerProcess:
    """
    A C{twistd -n stompd} child process; with C{config=None}, started
    without C{--config}; on C{port} if given (a broker started again where
    clients and connectors expect it), else on a free one.
    """

    def __init__(
        self,
        tmp_path: Path,
        config: str | None = "",
        args: tuple = (),
        port: int | None = None,
        netns: str | None = None,
        interface: str = "127.0.0.1",
    ) -> None:
        """
        @param netns: run inside this network namespace (see
            L{tests.support.netns}), listening on C{interface} there.
        """
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.netns = netns
        self.interface = interface
        config_args = []
        # The management listener opens after the STOMP ones: with one,
        # the broker is ready once its port is open.
        self._management_ports = []
        if config:
            listen = tomllib.loads(config).get("management", {}).get("listen", [])
            self._management_ports = [int(m.group(1)) for m in map(re.compile(r"tcp:(\d+)").match, listen) if m]
        if config is not None:
            config_path = tmp_path / "stompd.toml"
            config_path.write_text(config)
            config_args = ["--config", str(config_path)]
        self.directory = tmp_path
        self.log_path = tmp_path / "stompd.log"
        for attempt in range(3):
            self.port = port or free_port()
            self.ws_port = free_port()
            try:
                self._start(config_args, args)
                return
            except PortTaken:
                # A free port may be taken (by another listener, or as the
                # local port of an outgoing connection) before twistd binds it.
                if attempt == 2 or port is not None:
                    raise

    def _start(self, config_args: list, args: tuple) -> None:
        inside = ["ip", "netns", "exec", self.netns] if self.netns else []
        self.process = subprocess.Popen(
            [*inside, TWISTD, "-n", "--pidfile=", "stompd", *config_args,
             "--listen", f"tcp:{self.port}:interface={self.interface}",
             "--listen-ws", f"tcp:{self.ws_port}:interface={self.interface}", *args],
            stdout=open(self.log_path, "w"),
            stderr=subprocess.STDOUT,
            cwd=self.directory,
        )
        self.process.stdout = open(self.log_path)
        try:
            if self.netns:
                # Not reachable from here: its log says when it listens.
                self._wait_for_log(f"Site starting on {self.ws_port}")
                return
            # The listeners open one after the other; the last one open
            # means the broker is ready.
            wait_for_port(self.port, self.process)
            wait_for_port(self.ws_port, self.process)
            for port in self._management_ports:
                wait_for_port(port, self.process)
        except RuntimeError as e:
            if "Address already in use" in str(e):
                raise PortTaken(str(e)) from e
            raise

    def _wait_for_log(self, text: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log:
            if self.process.poll() is not None:
                raise RuntimeError(f"broker exited with {self.process.returncode}: {self.log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"broker did not log {text!r}")
            time.sleep(0.05)

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

    def kill(self) -> None:
        """
        SIGKILL, as a crash: nothing is given back or flushed.
        """
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
