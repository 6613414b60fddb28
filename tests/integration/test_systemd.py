"""
stompd under systemd's protocols, without systemd: a real twistd with a
fake NOTIFY_SOCKET (READY=1 once it listens, STOPPING=1 on SIGTERM), and
with listening sockets passed as systemd passes them (LISTEN_FDS); the
unit files checked by systemd-analyze where it is installed.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.broker import TWISTD
from tests.support.clients import stomp_client

pytestmark = pytest.mark.integration

UNITS = Path(__file__).resolve().parents[2] / "etc" / "systemd"


def recv_until(listening, text: str, timeout: float = 15.0) -> list[str]:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        listening.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            seen.append(listening.recv(4096).decode())
        except socket.timeout:
            break
        if any(text in message for message in seen):
            return seen
    raise AssertionError(f"no {text!r} among {seen}")


def test_notify_and_socket_activation(tmp_path):
    notify_path = str(tmp_path / "notify")
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listening.bind(notify_path)
    # The ports, bound and listening here, as systemd's .socket unit would.
    stomp_socket, ws_socket = socket.socket(), socket.socket()
    for passed in (stomp_socket, ws_socket):
        passed.bind(("127.0.0.1", 0))
        passed.listen(16)
    port = stomp_socket.getsockname()[1]
    passed = (stomp_socket.fileno(), ws_socket.fileno())
    environment = dict(os.environ, NOTIFY_SOCKET=notify_path, LISTEN_FDS="2", LISTEN_FDNAMES="stompd.socket:stompd.socket")
    # The descriptors go to 3 and 4, as systemd passes them, and LISTEN_PID
    # must be the broker's own pid: both done by what it is exec'd from.
    twistd_args = [TWISTD, "-n", "--pidfile=", "stompd", "--listen", "systemd:domain=INET:index=0",
                   "--listen-ws", "systemd:domain=INET:index=1"]
    launcher = (
        "import os, sys\n"
        f"os.dup2({passed[0]}, 3)\nos.dup2({passed[1]}, 4)\n"
        "os.environ['LISTEN_PID'] = str(os.getpid())\n"
        f"os.execv({TWISTD!r}, {twistd_args!r})\n"
    )
    log = open(tmp_path / "stompd.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-c", launcher], env=environment, pass_fds=passed, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path
    )
    try:
        messages = recv_until(listening, "READY=1")
        assert f"MAINPID={process.pid}" in messages[-1]
        client = stomp_client(port)
        client.send("/queue/activated", "through systemd's socket", headers={"receipt": "r"})
        client.collector.wait_for_receipt("r")
        client.disconnect()
        process.send_signal(signal.SIGTERM)
        recv_until(listening, "STOPPING=1")
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        listening.close()
        stomp_socket.close()
        ws_socket.close()
    assert "Traceback" not in (tmp_path / "stompd.log").read_text()


def test_the_unit_files_pass_systemd_analyze(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze is missing; .ci/run installs systemd")
        pytest.skip("systemd-analyze is not installed")
    for unit in ("stompd.service", "stompd.socket"):
        text = (UNITS / unit).read_text()
        # Where the README installs it, here the test's own virtualenv.
        (tmp_path / unit).write_text(text.replace("/opt/stompd/bin/twistd", str(Path(sys.executable).with_name("twistd"))))
    checked = subprocess.run(
        [analyze, "verify", "--man=no", str(tmp_path / "stompd.socket"), str(tmp_path / "stompd.service")],
        capture_output=True, text=True, timeout=60,
    )
    problems = [line for line in (checked.stdout + checked.stderr).splitlines() if "stompd" in line]
    assert checked.returncode == 0 and not problems, checked.stdout + checked.stderr
