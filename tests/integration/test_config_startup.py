"""
Start-up errors of the installed C{twistd stompd}: the process stops at once
with one line that says what is wrong and where, not a traceback.
"""

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

TWISTD = str(Path(sys.executable).with_name("twistd"))


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(tmp_path: Path, *args: str) -> tuple[int, str, float]:
    """
    Run C{twistd -n stompd ARGS} until it exits: (exit code, output, seconds).
    """
    started = time.monotonic()
    ran = subprocess.run(
        [TWISTD, "-n", "--pidfile=", "stompd", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    return ran.returncode, ran.stdout + ran.stderr, time.monotonic() - started


def assert_fails_clearly(tmp_path: Path, args, *words: str) -> str:
    """
    The broker exits non-zero within seconds, printing exactly one line
    that contains all of C{words}, and no traceback.
    """
    code, output, took = start(tmp_path, *args)
    assert code != 0, output
    assert took < 10, took
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if all(word in line for word in words)]
    assert len(lines) == 1, output
    return lines[0]


def write_config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "broker.toml"
    path.write_text(text)
    return str(path)


def listen_args() -> tuple[str, str]:
    return ("--listen", f"tcp:{unused_port()}:interface=127.0.0.1")


def test_missing_config_file(tmp_path):
    missing = str(tmp_path / "nowhere.toml")
    assert_fails_clearly(tmp_path, ["--config", missing, *listen_args()], missing, "No such file")


def test_a_config_error_is_the_only_line_printed(tmp_path):
    path = write_config(tmp_path, "listen = 5\n")
    code, output, _ = start(tmp_path, "--config", path)
    assert code != 0
    assert output.strip() == f"stompd: {path}: listen: expected a list of strings, got 5"


def test_the_log_names_the_configuration_file(tmp_path, broker_process):
    running = broker_process(tmp_path, "[queues]\ndefault-prefetch = 7\n")
    running.stop()
    assert f"Configuration: {tmp_path / 'stompd.toml'}" in running.log


def test_config_that_is_not_toml(tmp_path):
    path = write_config(tmp_path, "[limits\nmax-body-size = 3\n")
    assert_fails_clearly(tmp_path, ["--config", path, *listen_args()], path, "TOML")


@pytest.mark.parametrize(
    "text, key, problem",
    [
        ("colour = 'blue'\n", "colour", "unknown key"),
        ("[limits]\nmax-body-sise = 10\n", "max-body-sise", "unknown key"),
        ("[limits]\nmax_body_size = 10\n", "max_body_size", "unknown key"),
        ("[heart-beats]\nsend = 10\n", "heart-beats", "unknown key"),
        ("[auth]\nguest = 'no'\n", "guest", "expected a bool"),
        ("shutdown-timeout = 'soon'\n", "shutdown-timeout", "expected a float"),
        ("[limits]\nmax-body-size = '1MB'\n", "max-body-size", "expected an int"),
        ("[limits]\nmax-body-size = 1.5\n", "max-body-size", "expected an int"),
        ("listen = 'tcp:61613'\n", "listen", "list of strings"),
        ("limits = 5\n", "limits", "expected a table"),
    ],
)
def test_bad_key_or_type(tmp_path, text, key, problem):
    path = write_config(tmp_path, text)
    assert_fails_clearly(tmp_path, ["--config", path, *listen_args()], path, key, problem)


@pytest.mark.parametrize(
    "text, words",
    [
        ("[limits]\nmax-body-size = 0\n", ("limits", "max-body-size", "positive")),
        ("[limits]\nmax-headers = -3\n", ("limits", "max-headers", "positive")),
        ("[heart-beat]\ngrace = 0.5\n", ("heart-beat", "grace")),
        ("[heart-beat]\nsend = -1\n", ("heart-beat", "negative")),
        ("[queues]\nauto-delete = '(unclosed'\n", ("queues", "auto-delete", "regular expression")),
        ("connect-timeout = 0\n", ("connect-timeout", "positive")),
        ("virtual-hosts = ['/a']\n", ("virtual-hosts", "'/'")),
    ],
)
def test_bad_value(tmp_path, text, words):
    path = write_config(tmp_path, text)
    assert_fails_clearly(tmp_path, ["--config", path, *listen_args()], path, *words)


@pytest.mark.parametrize(
    "text, words",
    [
        ("[storage]\nbackend = 'nosuch'\n", ("nosuch",)),
        ("[auth]\nbackend = 'nosuch'\n", ("nosuch",)),
        ("[auth]\nusers-file = 'no-such-users'\n", ("no-such-users", "No such file")),
        ("[storage.memory]\nsize = 3\n", ("broker.toml", "storage.memory.size", "unknown key")),
        ("[storage.memroy]\n", ("broker.toml", "storage.memroy", "no stompd.storage plugin")),
        ("node-id = 'a b'\n", ("broker.toml", "node-id")),
        ("[storage]\nbackend = 'redis'\n[storage.redis]\nurl = 'http://x'\n", ("broker.toml", "storage.redis.url")),
    ],
)
def test_bad_plugin_or_users_file(tmp_path, text, words):
    path = write_config(tmp_path, text)
    assert_fails_clearly(tmp_path, ["--config", path, *listen_args()], *words)


def test_malformed_users_file(tmp_path):
    users = tmp_path / "users"
    users.write_text("alice:secret\n")
    path = write_config(tmp_path, f"[auth]\nusers-file = {str(users)!r}\n")
    assert_fails_clearly(tmp_path, ["--config", path, *listen_args()], str(users), "line 1")


@pytest.mark.parametrize(
    "endpoint, problem",
    [
        ("tcp:notaport", "invalid endpoint"),
        ("nosuchtype:1234", "invalid endpoint"),
        ("ssl:0:privateKey=/no/such/key.pem", "No such file"),
        ("ssl:0:privateKey=not-a-key.pem", "invalid endpoint"),
        ("tcp:99999", "cannot listen"),
        ("unix:/no/such/directory/stompd.sock", "No such file"),
    ],
)
def test_invalid_listen_endpoint(tmp_path, endpoint, problem):
    (tmp_path / "not-a-key.pem").write_text("not a key\n")
    assert_fails_clearly(tmp_path, ["--listen", endpoint], endpoint, problem)


def test_invalid_listen_endpoint_in_config(tmp_path):
    path = write_config(tmp_path, "listen = ['tcp:notaport']\n")
    assert_fails_clearly(tmp_path, ["--config", path], path, "listen", "tcp:notaport")


def test_invalid_listener_endpoint_in_config(tmp_path):
    path = write_config(tmp_path, "[[listener]]\nendpoint = 'tcp:notaport'\noci-compat = true\n")
    assert_fails_clearly(tmp_path, ["--config", path, *listen_args()], path, "listener[0].endpoint", "tcp:notaport")


@pytest.mark.parametrize(
    "text, words",
    [
        ("[queues]\nexpired = 'keep'\n", ("queues", "expired", "'keep'")),
        ("[queues]\ndead-letter-queue = '{queue}'\n", ("queues", "dead-letter-queue", "{name}")),
        ("[[listener]]\noci-compat = true\n", ("listener[0]", "endpoint is required")),
    ],
)
def test_bad_work_queue_value(tmp_path, text, words):
    path = write_config(tmp_path, text)
    assert_fails_clearly(tmp_path, ["--config", path, *listen_args()], path, *words)


@pytest.fixture
def endpoint_in_use():
    """
    A listen string for a loopback port that another socket listens on
    for the length of the test.
    """
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield f"tcp:{taken.getsockname()[1]}:interface=127.0.0.1"


def test_port_in_use(tmp_path, endpoint_in_use):
    line = assert_fails_clearly(tmp_path, ["--listen", endpoint_in_use], endpoint_in_use)
    assert "in use" in line


def test_second_endpoint_in_use_stops_start_up(tmp_path, endpoint_in_use):
    assert_fails_clearly(tmp_path, [*listen_args(), "--listen", endpoint_in_use], endpoint_in_use, "in use")
