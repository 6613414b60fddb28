"""
The installed C{twistd stompd}: plugin discovery, defaults, SIGTERM, TLS.
"""

import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import stomp

TWISTD = str(Path(sys.executable).with_name("twistd"))


def test_twistd_lists_the_plugin(tmp_path):
    shown = subprocess.run([TWISTD, "--help"], capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert any(line.split()[:1] == ["stompd"] for line in shown.stdout.splitlines()), shown.stdout
    assert "Traceback" not in shown.stdout + shown.stderr


def test_installed_plugin_does_not_shadow_other_twisted_plugins():
    # An __init__.py in twisted/plugins (or twisted/) would hide every
    # other package's twistd plugins.
    from importlib.metadata import files

    installed = [str(path) for path in files("stompd") if str(path).startswith("twisted/")]
    assert [path for path in installed if path.endswith(".py")] == ["twisted/plugins/stompd_plugin.py"]


def test_plugin_help(tmp_path):
    shown = subprocess.run([TWISTD, "stompd", "--help"], capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "--config" in shown.stdout and "--listen" in shown.stdout


def test_runs_without_a_config_file(tmp_path, broker_process, raw):
    running = broker_process(tmp_path, config=None)
    try:
        client = raw(running.port)
        assert client.connect("1.2").command == "CONNECTED"
        conn = stomp.Connection12([("127.0.0.1", running.port)])
        conn.connect("guest", "guest", wait=True)
        assert conn.is_connected()
        conn.disconnect()
        client.close()
    finally:
        assert running.stop() == 0
    assert "Traceback" not in running.log


def test_sigterm_tells_clients_and_exits_cleanly(tmp_path, broker_process, raw, connect):
    running = broker_process(tmp_path)
    try:
        clients = []
        for version in ("1.0", "1.1", "1.2"):
            client = raw(running.port)
            assert client.connect(version).command == "CONNECTED"
            clients.append(client)
        listening = stomp.Connection12([("127.0.0.1", running.port)])
        errors = []

        class Listener(stomp.ConnectionListener):
            def on_error(self, frame):
                errors.append(frame)

        listening.set_listener("errors", Listener())
        listening.connect("guest", "guest", wait=True)
        started = time.monotonic()
        running.process.send_signal(signal.SIGTERM)
        for client in clients:
            error = client.read_frame(timeout=5)
            assert error is not None and error.command == "ERROR", error
            assert "shut" in error.headers["message"], error
            assert error.body
            assert client.is_closed(5)
        assert running.process.wait(timeout=10) == 0
        assert time.monotonic() - started < 5
        deadline = time.monotonic() + 5
        while not errors and time.monotonic() < deadline:
            time.sleep(0.01)
        assert errors and "shut" in errors[0].headers["message"]
    finally:
        running.stop()
    assert "Traceback" not in running.log


def test_sigterm_with_no_clients_exits_quickly(tmp_path, broker_process):
    running = broker_process(tmp_path)
    started = time.monotonic()
    assert running.stop() == 0
    assert time.monotonic() - started < 3
    assert "Traceback" not in running.log


def test_ssl_endpoint(tmp_path, broker_process, raw, self_signed_certificate, free_port):
    key_path, cert_path = self_signed_certificate
    ssl_port = free_port()
    running = broker_process(
        tmp_path,
        args=("--listen", f"ssl:{ssl_port}:interface=127.0.0.1:privateKey={key_path}:certKey={cert_path}"),
    )
    try:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        deadline = time.monotonic() + 10
        while True:
            try:
                plain = socket.create_connection(("127.0.0.1", ssl_port), timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline, "the ssl endpoint does not listen"
                time.sleep(0.05)
        secure = context.wrap_socket(plain, server_hostname="localhost")
        client = raw(ssl_port, secure)
        try:
            assert client.connect("1.2").command == "CONNECTED"
            client.send_frame("SUBSCRIBE", {"id": "0", "destination": "/topic/tls", "receipt": "s"})
            assert client.read_frame().command == "RECEIPT"
            client.send_frame("SEND", {"destination": "/topic/tls"}, b"over tls")
            message = client.read_frame()
            assert message.command == "MESSAGE" and message.body == b"over tls"
        finally:
            client.close()

        conn = stomp.Connection12([("127.0.0.1", ssl_port)])
        conn.set_ssl(for_hosts=[("127.0.0.1", ssl_port)], verify=False)
        conn.connect("guest", "guest", wait=True)
        assert conn.is_connected()
        conn.disconnect()

        # The plain endpoint still works beside it.
        assert raw(running.port).connect("1.2").command == "CONNECTED"
    finally:
        assert running.stop() == 0


def test_sigterm_does_not_wait_forever_for_a_client_that_does_not_read(tmp_path, broker_process, raw):
    running = broker_process(tmp_path, "shutdown-timeout = 1.0\n")
    try:
        stuck = raw(running.port)
        stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect("1.2")
        stuck.send_frame("SUBSCRIBE", {"id": "0", "destination": "/topic/unread", "receipt": "s"})
        assert stuck.read_frame().command == "RECEIPT"
        # Fill the socket buffers between broker and client, so that the
        # broker's goodbye cannot be delivered.
        publisher = raw(running.port)
        publisher.connect("1.2")
        body = b"x" * 60_000
        for _ in range(100):
            publisher.send_frame("SEND", {"destination": "/topic/unread"}, body)
        publisher.send_frame("SEND", {"destination": "/topic/unread", "receipt": "sent"})
        assert publisher.read_frame().command == "RECEIPT"
        started = time.monotonic()
        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(timeout=10) == 0
        # shutdown-timeout, plus a little
        assert time.monotonic() - started < 4
    finally:
        running.stop()
    assert "Traceback" not in running.log
    assert "Unhandled error" not in running.log
