"""
Topics and queues through a real stomp.py client.
"""

import uuid


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def test_topic_reaches_every_subscriber_in_order(connect):
    topic = unique("/topic/news.")
    subscribers = [connect() for _ in range(3)]
    for n, conn in enumerate(subscribers):
        conn.subscribe(topic, id=f"s{n}", receipt=f"sub{n}")
        assert conn.collector.wait_for(lambda: f"sub{n}" in conn.collector.receipts)
    producer = connect()
    for i in range(20):
        producer.send(topic, f"m{i}")
    for conn in subscribers:
        assert conn.collector.wait_for(lambda: len(conn.collector.messages) == 20)
        assert [m.body for m in conn.collector.messages] == [f"m{i}" for i in range(20)]
        assert all(m.headers["destination"] == topic for m in conn.collector.messages)
