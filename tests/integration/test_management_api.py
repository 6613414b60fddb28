"""
The management API on a real broker, through an HTTP client: reading,
purging (in-flight spared), closing a connection, deleting a queue, moving
dead letters back, rights by group, and JSON errors for bad input.
"""

import base64
import json
import time
import urllib.error
import urllib.request
from urllib.parse import quote

import pytest

from tests.integration.test_auth import admin
from tests.support.broker import free_port
from tests.support.clients import subscribe_with_receipt

pytestmark = pytest.mark.integration


class Api:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}/api"

    def call(self, method: str, path: str, user: tuple[str, str] | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(self.base + path, method=method, data=b"" if method == "POST" else None)
        if user:
            request.add_header("Authorization", "Basic " + base64.b64encode(":".join(user).encode()).decode())
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.headers["content-type"] == "application/json"
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as e:
            assert e.headers["content-type"] == "application/json"
            return e.code, json.loads(e.read())


ADMIN, MONITOR, NOBODY = ("root", "pw"), ("watcher", "pw"), ("eve", "pw")


@pytest.fixture(scope="module")
def managed(tmp_path_factory, broker_process):
    directory = tmp_path_factory.mktemp("managed")
    users = directory / "users"
    for (name, _), groups in ((ADMIN, "admin"), (MONITOR, "monitor"), (NOBODY, "")):
        assert admin("--users-file", str(users), "user", "add", name, "--groups", groups, input="pw\n").returncode == 0
    port = free_port()
    config = f'[auth]\nusers-file = "{users}"\n[management]\nlisten = ["tcp:{port}:interface=127.0.0.1"]\n'
    running = broker_process(directory, config)
    running.api = Api(port)
    yield running
    running.stop()
    assert "Traceback" not in running.log


def queue_path(name: str) -> str:
    return f"/queues/{quote('/', safe='')}/{quote(name, safe='')}"


def test_the_openapi_document_needs_no_credentials(managed):
    code, document = managed.api.call("GET", "/openapi.json")
    assert code == 200
    assert "/api/queues/{vhost}/{queue}/purge" in document["paths"]


def test_reading_needs_monitor_or_admin(managed):
    assert managed.api.call("GET", "/overview")[0] == 401
    assert managed.api.call("GET", "/overview", ("root", "wrong"))[0] == 401
    code, error = managed.api.call("GET", "/overview", NOBODY)
    assert (code, error["error"]) == (403, "forbidden")
    code, overview = managed.api.call("GET", "/overview", MONITOR)
    assert code == 200 and overview["node_id"] and overview["uptime_seconds"] >= 0
    assert managed.api.call("GET", "/vhosts", MONITOR)[1] == [{"name": "/", "queues": overview["queues"]}]


def test_purge_spares_what_is_in_flight(managed, clients, unique):
    queue = unique("/queue/purged.")
    producer = clients(managed.port)
    consumer = clients(managed.port)
    subscribe_with_receipt(consumer, queue, id="c", ack="client-individual", **{"prefetch-count": "1"})
    for n in range(4):
        producer.send(queue, f"m{n}", headers={"receipt": f"r{n}"})
    producer.collector.wait_for_receipt("r3")
    consumer.collector.wait_for_bodies(1)
    (row,) = [row for row in managed.api.call("GET", "/destinations", MONITOR)[1] if row.get("queue") == queue]
    assert (row["kind"], row["ready"], row["unacked"], row["consumers"]) == ("queue", 3, 1, 1)
    assert (row["published"], row["delivered"], row["acked"]) == (4, 1, 0)
    assert {"published_per_second", "delivered_per_second", "acked_per_second"} <= set(row)
    assert managed.api.call("POST", queue_path(queue) + "/purge", MONITOR)[0] == 403
    assert managed.api.call("POST", queue_path(queue) + "/purge", ADMIN) == (200, {"purged": 3})
    # The one in flight settles as usual: NACKed, it is delivered again.
    consumer.nack(consumer.collector.messages[0].headers["ack"])
    assert consumer.collector.wait_for_bodies(2) == ["m0", "m0"]


def test_topics_are_listed_with_what_went_through_them(managed, clients, unique):
    topic = unique("/topic/listed.")
    listeners = [clients(managed.port) for _ in range(2)]
    for n, listener in enumerate(listeners):
        subscribe_with_receipt(listener, topic, id=f"l{n}")
    producer = clients(managed.port)
    for n in range(3):
        producer.send(topic, f"t{n}", headers={"receipt": f"t{n}"})
    producer.collector.wait_for_receipt("t2")
    for listener in listeners:
        listener.collector.wait_for_bodies(3)
    (row,) = [row for row in managed.api.call("GET", "/destinations", MONITOR)[1] if row.get("topic") == topic]
    assert (row["kind"], row["consumers"], row["published"], row["delivered"]) == ("topic", 2, 3, 6)


def test_close_a_connection_and_delete_a_queue(managed, clients, unique):
    queue = unique("/queue/deleted.")
    victim = clients(managed.port)
    subscribe_with_receipt(victim, queue, id="v")
    connections = managed.api.call("GET", "/connections", MONITOR)[1]
    session = victim.collector.connected[0].headers["session"]
    (row,) = [row for row in connections if row["session"] == session]
    assert (row["user"], row["transport"], row["version"], row["subscriptions"]) == ("guest", "tcp", "1.2", 1)
    assert managed.api.call("DELETE", f"/connections/{session}", ADMIN) == (200, {"closed": session})
    assert victim.collector.wait_for(lambda: victim.collector.errors)
    assert victim.collector.errors[0].headers["message"] == "closed by an administrator"
    assert managed.api.call("DELETE", f"/connections/{session}", ADMIN)[0] == 404
    assert managed.api.call("DELETE", queue_path(queue), ADMIN) == (200, {"deleted": queue})


def test_dead_letters_move_back_to_their_queue(managed, clients, unique):
    queue = unique("/queue/retried.")
    worker = clients(managed.port)
    subscribe_with_receipt(worker, queue, id="w", ack="client-individual")
    producer = clients(managed.port)
    producer.send(queue, "poison", headers={"receipt": "r", "job": "7"})
    worker.collector.wait_for_bodies(1)
    worker.nack(worker.collector.messages[0].headers["ack"], requeue="false", receipt="n")
    worker.collector.wait_for_receipt("n")
    deadline = time.monotonic() + 5
    while managed.api.call("POST", queue_path(queue + ".DLQ") + "/move-dead-letters", ADMIN)[1]["moved"] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert worker.collector.wait_for_bodies(2) == ["poison", "poison"]
    again = worker.collector.messages[1]
    assert again.headers["job"] == "7"
    assert "dead-letter-reason" not in again.headers


def test_bad_input_gets_json_errors(managed):
    assert managed.api.call("GET", "/nothing", MONITOR)[0] == 404
    assert managed.api.call("POST", "/overview", ADMIN)[0] == 405
    assert managed.api.call("POST", "/queues/nowhere/x/purge", ADMIN)[0] == 404
    assert managed.api.call("POST", f"/queues/{quote('/', safe='')}/not-a-queue/purge", ADMIN)[0] == 400
