"""
SIGHUP on a real broker: new users, tokens and authorization rules and log
level are taken without dropping connections; a bad file keeps the old.
"""

import signal

import pytest
import stomp

from tests.integration.test_auth import admin
from tests.support.broker import wait_for_log
from tests.support.clients import stomp_client

pytestmark = pytest.mark.integration


def test_sighup_reloads_users_rules_and_level_and_keeps_connections(tmp_path, broker_process):
    users = tmp_path / "users"
    assert admin("--users-file", str(users), "user", "add", "alice", input="pw\n").returncode == 0
    config_path = tmp_path / "stompd.toml"
    base = f'[auth]\nguest = false\nusers-file = "{users}"\n'
    running = broker_process(tmp_path, base)
    try:
        kept = stomp_client(running.port, login="alice", passcode="pw")
        # A new user, a rule, a quieter log; then SIGHUP.
        assert admin("--users-file", str(users), "user", "add", "bob", input="pw2\n").returncode == 0
        config_path.write_text(
            base
            + '[logging]\nlevel = "warn"\n'
            + '[authorization]\ndefault = "allow"\n[[authorization.rules]]\nusers = ["alice"]\n'
            + 'destinations = ["/queue/closed"]\npermissions = ["write"]\naccess = "deny"\n'
        )
        running.process.send_signal(signal.SIGHUP)
        wait_for_log(running, "SIGHUP: reloaded")
        assert kept.is_connected()
        bob = stomp_client(running.port, login="bob", passcode="pw2")
        assert "CONNECTED" not in running.log.split("SIGHUP: reloaded")[1]
        kept.send("/queue/closed", "no", headers={"receipt": "r"})
        assert kept.collector.wait_for(lambda: kept.collector.errors)
        assert kept.collector.errors[0].headers["message"] == "write access to /queue/closed refused"
        bob.disconnect()
        # A bad file: the running configuration stays.
        config_path.write_text(base + '[authorization]\ndefault = "maybe"\n')
        running.process.send_signal(signal.SIGHUP)
        wait_for_log(running, "the running configuration stays")
        with pytest.raises(stomp.exception.ConnectFailedException):
            stomp_client(running.port, login="carol", passcode="x")
        assert stomp_client(running.port, login="bob", passcode="pw2").is_connected()
    finally:
        running.stop()
    assert "Traceback" not in running.log
