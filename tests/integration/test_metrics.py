"""
The management listener's /metrics on a real broker, parsed with
prometheus-client's own parser and checked against the traffic the test
sent.
"""

import base64
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_auth import admin
from tests.support.broker import free_port
from tests.support.clients import subscribe_with_receipt

pytestmark = pytest.mark.integration


def scrape(port: int, credentials: tuple[str, str] | None = None) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
    if credentials:
        token = base64.b64encode(":".join(credentials).encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_count_what_clients_did(tmp_path, broker_process, clients):
    port = free_port()
    running = broker_process(tmp_path, f'[management]\nlisten = ["tcp:{port}:interface=127.0.0.1"]\n')
    try:
        consumer = clients(running.port)
        subscribe_with_receipt(consumer, "/queue/metered", id="m", ack="client-individual")
        producer = clients(running.port)
        for n in range(5):
            producer.send("/queue/metered", f"m{n}", headers={"receipt": f"r{n}"})
        producer.collector.wait_for_receipt("r4")
        consumer.collector.wait_for_bodies(5)
        for message in consumer.collector.messages[:3]:
            consumer.ack(message.headers["ack"])
        producer.send("/nowhere", "bad", headers={"receipt": "bad"})
        producer.collector.wait_for(lambda: producer.collector.errors)
        # Wait until the ACKs are in: the unacked gauge says 2.
        deadline = time.monotonic() + 5
        while True:
            samples = scrape(port)
            unacked = samples[("stompd_queue_messages_unacked", (("queue", "/queue/metered"), ("vhost", "/")))]
            if unacked == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert unacked == 2
        assert samples[("stompd_messages_published_total", ())] == 6
        assert samples[("stompd_messages_delivered_total", ())] == 5
        assert samples[("stompd_messages_acked_total", ())] == 3
        assert samples[("stompd_frames_received_total", (("command", "SEND"),))] == 6
        # Each SEND carries at least its destination header and body.
        assert samples[("stompd_frames_received_bytes_total", (("command", "SEND"),))] > 6 * len("/queue/metered")
        assert samples[("stompd_frames_sent_bytes_total", (("command", "MESSAGE"),))] > 5 * len("/queue/metered")
        assert samples[("stompd_errors_sent_total", (("message", "unknown destination"),))] == 1
        assert samples[("stompd_connections", (("transport", "tcp"),))] >= 1
        assert samples[("stompd_queue_consumers", (("queue", "/queue/metered"), ("vhost", "/")))] == 1
        assert samples[("stompd_connections_opened_total", (("transport", "tcp"),))] >= 2
    finally:
        running.stop()


def test_metrics_count_expired_and_dead_lettered_messages(tmp_path, broker_process, clients):
    port = free_port()
    running = broker_process(tmp_path, f'[management]\nlisten = ["tcp:{port}:interface=127.0.0.1"]\n')
    try:
        producer = clients(running.port)
        for n in range(3):
            producer.send("/queue/perishing", f"p{n}", headers={"ttl": "1", "receipt": f"p{n}"})
        producer.send("/queue/poisoned", "retried", headers={"receipt": "retried"})
        producer.send("/queue/poisoned", "refused", headers={"receipt": "refused"})
        producer.collector.wait_for_receipt("refused")
        time.sleep(0.05)
        # Found expired when a consumer comes: dead-lettered to .DLQ.
        late = clients(running.port)
        subscribe_with_receipt(late, "/queue/perishing", id="late")
        worker = clients(running.port)
        subscribe_with_receipt(worker, "/queue/poisoned", id="w", ack="client-individual", **{"max-deliveries": "1"})
        worker.collector.wait_for_bodies(2)
        retried, refused = worker.collector.messages
        # A NACK asking for a retry past max-deliveries, and one refusing it.
        worker.nack(retried.headers["ack"], receipt="n1")
        worker.nack(refused.headers["ack"], requeue="false", receipt="n2")
        worker.collector.wait_for_receipt("n2")
        deadline = time.monotonic() + 5
        while True:
            samples = scrape(port)
            dead = {labels: value for (name, labels), value in samples.items() if name == "stompd_messages_dead_lettered_total"}
            if sum(dead.values()) == 5 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert dead == {
            (("reason", "expired"),): 3,
            (("reason", "max-deliveries"),): 1,
            (("reason", "rejected"),): 1,
        }
        assert samples[("stompd_messages_expired_total", ())] == 3
        assert late.collector.messages == []
    finally:
        running.stop()


def test_metrics_auth_needs_a_monitor(tmp_path, broker_process):
    users = tmp_path / "users"
    for name, groups in (("prom", "monitor"), ("eve", "")):
        assert admin("--users-file", str(users), "user", "add", name, "--groups", groups, input="pw\n").returncode == 0
    port = free_port()
    config = f'[auth]\nusers-file = "{users}"\n[management]\nlisten = ["tcp:{port}:interface=127.0.0.1"]\nmetrics-auth = true\n'
    running = broker_process(tmp_path / "broker", config)
    try:
        with pytest.raises(urllib.error.HTTPError) as missing:
            scrape(port)
        assert missing.value.code == 401
        with pytest.raises(urllib.error.HTTPError) as wrong_group:
            scrape(port, ("eve", "pw"))
        assert wrong_group.value.code == 403
        assert ("stompd_connections", (("transport", "tcp"),)) in scrape(port, ("prom", "pw"))
    finally:
        running.stop()


def test_redis_store_calls_are_timed(tmp_path, broker_process, clients):
    from tests.support.redis import RedisServer

    redis = RedisServer(tmp_path / "redis")
    port = free_port()
    config = (
        f'[storage]\nbackend = "redis"\n[storage.redis]\nurl = "{redis.url}"\n'
        f'[management]\nlisten = ["tcp:{port}:interface=127.0.0.1"]\n'
    )
    running = broker_process(tmp_path / "broker", config)
    try:
        producer = clients(running.port)
        for n in range(5):
            producer.send("/queue/timed", f"m{n}", headers={"receipt": f"r{n}"})
        producer.collector.wait_for_receipt("r4")
        samples = scrape(port)
        assert samples[("stompd_storage_call_seconds_count", (("operation", "enqueue"),))] == 5
        assert samples[("stompd_storage_call_seconds_bucket", (("le", "+Inf"), ("operation", "enqueue")))] == 5
        assert samples[("stompd_storage_call_seconds_sum", (("operation", "enqueue"),))] > 0
    finally:
        running.stop()
        redis.stop()
