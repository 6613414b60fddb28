"""
A real C{redis-server} for tests: its own directory, a free loopback port,
append-only file on (as the durability docs ask of operators), stopped by
its process id.
"""

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

REDIS_SERVER = shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def need_redis() -> None:
    """
    Skip without redis-server here; under CI (which installs it) fail.
    """
    if REDIS_SERVER is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed (apt-get install redis-server)")
        pytest.skip("redis-server is not installed")


class RedisServer:
    """
    One C{redis-server} process on 127.0.0.1.

    @ivar url: its C{redis://} URL for C{[storage.redis] url}.
    """

    def __init__(
        self, directory: Path, port: int | None = None, unix_socket: bool = False, replica_of: "RedisServer | None" = None
    ) -> None:
        need_redis()
        self.directory = directory
        self.replica_of = replica_of
        # Short: a UNIX socket path has a small length limit.
        self.unix_socket = f"/tmp/stompd-redis-{os.getpid()}-{id(self)}.sock" if unix_socket else None
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = None
        for attempt in range(3):
            self.port = port or free_port()
            self.url = f"redis://127.0.0.1:{self.port}/0"
            try:
                self.start()
                return
            except RuntimeError:
                # A free port may be taken before redis-server binds it.
                if port is not None or attempt == 2:
                    raise

    def start(self) -> None:
        """
        Start (or start again, on the same port and data) the server.
        """
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.directory),
                "--appendonly", "yes",
                "--appendfsync", "everysec",
                "--save", "",
                "--daemonize", "no",
                "--logfile", str(self.directory / "redis.log"),
                *(["--unixsocket", self.unix_socket] if self.unix_socket else []),
                *(["--replicaof", "127.0.0.1", str(self.replica_of.port)] if self.replica_of else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {(self.directory / 'redis.log').read_text()[-2000:]}")
            if self.command("PING") == b"+PONG":
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not answer PING")

    def command(self, *words: str) -> bytes | None:
        """
        One inline command, its first reply line; C{None} if unreachable.
        """
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                s.sendall(" ".join(words).encode() + b"\r\n")
                return s.recv(65536).split(b"\r\n")[0]
        except OSError:
            return None

    def flush(self) -> None:
        assert self.command("FLUSHALL") == b"+OK"

    def kill(self) -> None:
        """
        SIGKILL, as a crash.
        """
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


class RedisSentinel:
    """
    A C{redis-server --sentinel} watching C{master} as service C{service}.
    """

    def __init__(self, directory: Path, master: RedisServer, service: str = "mymaster") -> None:
        need_redis()
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.service = service
        config = directory / "sentinel.conf"
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {directory}\n"
            f"sentinel monitor {service} 127.0.0.1 {master.port} 1\n"
            f"sentinel down-after-milliseconds {service} 1000\n"
            f"sentinel failover-timeout {service} 5000\n"
        )
        self.process = subprocess.Popen(
            [REDIS_SERVER, str(config), "--sentinel", "--logfile", str(directory / "sentinel.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(f"SENTINEL get-master-addr-by-name {service}\r\n".encode())
                    if str(master.port).encode() in s.recv(4096):
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("redis sentinel did not come up")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
