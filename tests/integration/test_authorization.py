"""
Authorization rules on a real broker, through stomp.py over TCP and
@stomp/stompjs over WebSocket, with users and groups from a users file
made by stompd-admin.
"""

import pytest

from tests.integration.test_auth import admin
from tests.support.clients import subscribe_with_receipt
from tests.support.stompjs import Script, find_node

pytestmark = pytest.mark.integration

RULES = """
[authorization]
default = "deny"

[[authorization.rules]]
users = ["alice"]
destinations = ["/queue/orders.*", "/topic/#"]
permissions = ["read", "write"]

[[authorization.rules]]
groups = ["analysts"]
vhost = "/"
destinations = ["/topic/prices.#"]
permissions = ["read"]
"""


@pytest.fixture(scope="module")
def ruled(tmp_path_factory, broker_process):
    directory = tmp_path_factory.mktemp("authorization")
    users = directory / "users"
    for name, groups in (("alice", ""), ("bob", "analysts")):
        made = admin("--users-file", str(users), "user", "add", name, "--groups", groups, input=f"{name}-pw\n")
        assert made.returncode == 0, made.stderr
    running = broker_process(directory, f'[auth]\nguest = false\nusers-file = "{users}"\n' + RULES)
    yield running
    running.stop()
    assert "Traceback" not in running.log


def test_permitted_frames_pass_and_a_refused_send_gets_an_error(ruled, clients):
    alice = clients(ruled.port, login="alice", passcode="alice-pw")
    subscribe_with_receipt(alice, "/queue/orders.new", id="o")
    alice.send("/queue/orders.new", "ok", headers={"receipt": "r1"})
    alice.collector.wait_for_receipt("r1")
    assert alice.collector.wait_for_bodies(1) == ["ok"]
    alice.send("/queue/payroll", "no", headers={"receipt": "r2"})
    assert alice.collector.wait_for(lambda: alice.collector.errors)
    error = alice.collector.errors[0]
    assert error.headers["message"] == "write access to /queue/payroll refused"
    assert error.headers["receipt-id"] == "r2"
    assert "write" in ruled.log and "Refused write of /queue/payroll to alice" in ruled.log


def test_a_group_reads_a_wildcard_subscription_only_where_it_may(ruled, clients):
    bob = clients(ruled.port, login="bob", passcode="bob-pw")
    subscribe_with_receipt(bob, "/topic/#", id="all")
    alice = clients(ruled.port, login="alice", passcode="alice-pw")
    for destination in ("/topic/news.today", "/topic/prices.eu"):
        alice.send(destination, destination, headers={"receipt": destination})
        alice.collector.wait_for_receipt(destination)
    assert bob.collector.wait_for_bodies(1, quiet=0.5) == ["/topic/prices.eu"]
    bob.send("/topic/prices.eu", "bob may not write", headers={"receipt": "w"})
    assert bob.collector.wait_for(lambda: bob.collector.errors)
    assert bob.collector.errors[0].headers["message"] == "write access to /topic/prices.eu refused"


def test_websocket_clients_go_through_the_same_rules(ruled):
    node = find_node()
    url = f"ws://127.0.0.1:{ruled.ws_port}/ws"
    script = Script(node, "refused", url, "bob", "bob-pw", "SUBSCRIBE", "/queue/orders.new")
    answer = script.next()
    assert answer["headers"]["message"] == "read access to /queue/orders.new refused"
    assert answer["headers"]["receipt-id"] == "r"
    allowed = Script(node, "refused", url, "bob", "bob-pw", "SUBSCRIBE", "/topic/prices.us")
    assert allowed.next() == {"receipt": True}
    for script in (script, allowed):
        script.stop()
