"""
Authentication by the built-in authenticator: guest, a users file made with
C{stompd-admin} (users, groups, tokens), and the C{[auth]} switches.
"""

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def connect_as(raw):
    """
    Send a CONNECT with these credentials (none when C{None}) and return
    the raw client.
    """

    def send(port: int, login: str | None, passcode: str | None):
        client = raw(port)
        headers = {"accept-version": "1.2", "host": "localhost"}
        if login is not None:
            headers["login"] = login
        if passcode is not None:
            headers["passcode"] = passcode
        client.send_frame("CONNECT", headers)
        return client

    return send


def assert_accepted(client) -> None:
    frame = client.read_frame()
    assert frame is not None and frame.command == "CONNECTED", frame


@pytest.fixture
def assert_refused(expect_error):
    def check(client, message: str) -> None:
        error = expect_error(client, message)
        assert "passcode" not in error.headers

    return check


ADMIN = str(Path(sys.executable).with_name("stompd-admin"))


def admin(*args: str, input: str = "") -> subprocess.CompletedProcess:
    """
    Run the installed stompd-admin, as an operator does.
    """
    return subprocess.run([ADMIN, *args], input=input, capture_output=True, text=True, timeout=30)


@pytest.fixture(scope="module")
def users_file(tmp_path_factory):
    """
    A users file with alice (groups ops and monitor) and a token of hers,
    made the documented way.
    """
    path = tmp_path_factory.mktemp("users") / "users"
    made = admin("--users-file", str(path), "user", "add", "alice", "--groups", "ops,monitor", input="wonder land\n")
    assert made.returncode == 0, made.stderr
    return path


@pytest.fixture(scope="module")
def alice_token(users_file):
    made = admin("--users-file", str(users_file), "token", "alice")
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


@pytest.fixture(scope="module")
def users_broker(tmp_path_factory, users_file, alice_token, broker_process):
    running = broker_process(
        tmp_path_factory.mktemp("users-broker"),
        f"[auth]\nusers-file = {str(users_file)!r}\n",
    )
    yield running
    running.stop()


def test_guest_is_accepted_by_default(connect):
    assert connect(login="guest", passcode="guest").is_connected()


def test_wrong_passcode_is_refused_with_a_reason(broker, connect_as, assert_refused, assert_serving):
    assert_refused(connect_as(broker.port, "guest", "not-guest"), "credentials")
    assert_serving()


def test_unknown_user_is_refused(broker, connect_as, assert_refused):
    assert_refused(connect_as(broker.port, "mallory", "guest"), "credentials")


def test_connect_without_login_is_refused_by_default(broker, connect_as, assert_refused):
    assert_refused(connect_as(broker.port, None, None), "login")


def test_users_file_holds_no_plain_text_password_or_token(users_file, alice_token):
    text = users_file.read_text()
    assert "wonder" not in text and alice_token not in text
    password, token = text.splitlines()
    assert password.startswith("alice:pbkdf2-sha256$") and password.endswith(":ops,monitor")
    assert token.startswith("alice:token-sha256$")
    assert users_file.stat().st_mode & 0o077 == 0


def test_a_token_is_a_passcode(users_broker, connect_as, assert_refused, alice_token):
    assert_accepted(connect_as(users_broker.port, "alice", alice_token))
    assert_refused(connect_as(users_broker.port, "alice", alice_token[:-1]), "credentials")


def test_stompd_admin_lists_and_removes_users(tmp_path):
    path = str(tmp_path / "users")
    assert admin("--users-file", path, "user", "add", "bob", input="pw\n").returncode == 0
    assert admin("--users-file", path, "token", "bob").returncode == 0
    listed = admin("--users-file", path, "user", "list")
    assert listed.stdout.split() == ["bob", "groups=-", "password=yes", "tokens=1"]
    assert admin("--users-file", path, "user", "remove", "bob").returncode == 0
    assert admin("--users-file", path, "user", "list").stdout.strip() == ""
    missing = admin("--users-file", path, "user", "remove", "bob")
    assert (missing.returncode, missing.stderr.strip()) == (1, f"stompd-admin: {path}: no user 'bob'")


def test_stompd_admin_refuses_an_empty_password_and_finds_the_configured_file(tmp_path):
    users = tmp_path / "users"
    config = tmp_path / "stompd.toml"
    config.write_text(f"[auth]\nusers-file = {str(users)!r}\n")
    empty = admin("--config", str(config), "user", "add", "carol", input="\n")
    assert (empty.returncode, empty.stderr.strip()) == (1, "stompd-admin: an empty password is refused")
    assert admin("--config", str(config), "user", "add", "carol", input="secret\n").returncode == 0
    assert users.read_text().startswith("carol:pbkdf2-sha256$")
    # python -m stompd.admin is the same tool.
    same = subprocess.run(
        [sys.executable, "-m", "stompd.admin", "--config", str(config), "user", "list"],
        capture_output=True, text=True, timeout=30, cwd=tmp_path,
    )
    assert same.stdout.startswith("carol\t")


def test_stompd_admin_checks_a_configuration(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text("[queues]\ndefault-prefetch = 10\n")
    assert admin("check-config", str(good)).stdout.strip() == f"{good}: OK"
    bad = tmp_path / "bad.toml"
    bad.write_text('[authorization]\ndefault = "maybe"\n')
    checked = admin("check-config", str(bad))
    assert checked.returncode == 1
    assert checked.stderr.strip() == f"stompd-admin: {bad}: authorization: default must be 'allow' or 'deny', not 'maybe'"


def test_users_file_user_is_accepted(users_broker, connect_as):
    assert_accepted(connect_as(users_broker.port, "alice", "wonder land"))
    # a second time, from the cache of verified logins
    assert_accepted(connect_as(users_broker.port, "alice", "wonder land"))


def test_users_file_user_with_wrong_passcode_is_refused(users_broker, connect_as, assert_refused):
    assert_accepted(connect_as(users_broker.port, "alice", "wonder land"))
    assert_refused(connect_as(users_broker.port, "alice", "wonderland"), "credentials")
    assert_refused(connect_as(users_broker.port, "alice", None), "credentials")


def test_users_file_keeps_guest(users_broker, connect_as):
    assert_accepted(connect_as(users_broker.port, "guest", "guest"))


def test_guest_can_be_switched_off(tmp_path, broker_process, connect_as, assert_refused):
    running = broker_process(tmp_path, "[auth]\nguest = false\n")
    try:
        assert_refused(connect_as(running.port, "guest", "guest"), "credentials")
    finally:
        assert running.stop() == 0


def test_anonymous_clients_can_be_allowed(tmp_path, broker_process, connect_as, assert_refused):
    running = broker_process(tmp_path, "[auth]\nanonymous = true\n")
    try:
        assert_accepted(connect_as(running.port, None, None))
        assert_accepted(connect_as(running.port, "guest", "guest"))
        assert_refused(connect_as(running.port, "guest", "wrong"), "credentials")
    finally:
        assert running.stop() == 0


def test_passcodes_are_not_logged(tmp_path, broker_process, connect_as, assert_refused):
    running = broker_process(tmp_path)
    try:
        assert_refused(connect_as(running.port, "guest", "secret-passcode-1234"), "credentials")
        assert_accepted(connect_as(running.port, "guest", "guest"))
    finally:
        running.stop()
    assert "secret-passcode-1234" not in running.log


def test_stompd_admin_needs_a_command_and_a_name():
    ran = admin(input="")
    assert ran.returncode == 2
    assert "usage" in ran.stderr
    assert admin("token").returncode == 2


def test_stompd_admin_keeps_an_existing_files_mode(tmp_path):
    path = tmp_path / "users"
    assert admin("--users-file", str(path), "user", "add", "dave", input="pw\n").returncode == 0
    path.chmod(0o640)
    assert admin("--users-file", str(path), "token", "dave").returncode == 0
    assert path.stat().st_mode & 0o777 == 0o640
