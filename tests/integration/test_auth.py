"""
Authentication by the built-in authenticator: guest, a users file made with
C{python -m stompd.auth}, and the C{[auth]} switches.
"""

import subprocess
import sys

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


@pytest.fixture(scope="module")
def users_file(tmp_path_factory):
    """
    A users file with alice, made the documented way.
    """
    made = subprocess.run(
        [sys.executable, "-m", "stompd.auth", "alice"],
        input="wonder land\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert made.returncode == 0, made.stderr
    path = tmp_path_factory.mktemp("users") / "users"
    path.write_text("# stompd users\n" + made.stdout)
    return path


@pytest.fixture(scope="module")
def users_broker(tmp_path_factory, users_file, broker_process):
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


def test_users_file_holds_no_plain_text_password(users_file):
    text = users_file.read_text()
    assert "wonder" not in text
    (line,) = [line for line in text.splitlines() if not line.startswith("#")]
    name, _, hashed = line.partition(":")
    assert name == "alice"
    assert hashed.startswith("pbkdf2-sha256$")


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


def test_auth_tool_needs_a_name():
    ran = subprocess.run(
        [sys.executable, "-m", "stompd.auth"], input="", capture_output=True, text=True, timeout=30
    )
    assert ran.returncode == 2
    assert "usage" in ran.stderr
    assert not ran.stdout
