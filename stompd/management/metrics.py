"""
Prometheus metrics of the broker, collected when scraped from what the
broker already keeps: its counters, its queues' last-known depths and its
subscriptions' unacknowledged counts. Nothing walks the messages.

Names follow Prometheus conventions (C{stompd_} prefix, counters ending in
C{_total}, base units), with RabbitMQ's stems where there is one.
"""

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from stompd.broker.metrics import LATENCY_BUCKETS

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _counter(name: str, documentation: str, label: str, values: dict) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


class BrokerCollector:
    """
    A prometheus-client collector reading one L{BrokerService}.
    """

    def __init__(self, broker) -> None:
        self._broker = broker

    def collect(self):
        broker = self._broker
        counters = broker.counters.totals(broker.sessions)
        connections = GaugeMetricFamily("stompd_connections", "Client connections open now.", labels=["transport"])
        open_by_kind: dict[str, int] = {"tcp": 0, "websocket": 0}
        for session in broker.sessions:
            open_by_kind[session.kind] = open_by_kind.get(session.kind, 0) + 1
        for kind, count in sorted(open_by_kind.items()):
            connections.add_metric([kind], count)
        yield connections
        yield _counter("stompd_connections_opened", "Connections accepted.", "transport", counters.connections_opened)
        yield _counter("stompd_connections_closed", "Connections gone.", "transport", counters.connections_closed)
        yield _counter("stompd_frames_received", "Frames received, by command.", "command", counters.frames_received)
        yield _counter("stompd_frames_sent", "Frames sent, by command.", "command", counters.frames_sent)
        yield _counter(
            "stompd_frames_received_bytes", "Bytes of the frames received, by command.", "command", counters.frame_bytes_received
        )
        yield _counter("stompd_frames_sent_bytes", "Bytes of the frames sent, by command.", "command", counters.frame_bytes_sent)
        yield _counter("stompd_received_bytes", "Bytes received from clients.", "transport", counters.bytes_received)
        yield _counter("stompd_sent_bytes", "Bytes sent to clients.", "transport", counters.bytes_sent)
        messages = counters.messages
        for event, documentation in (
            ("published", "Messages published (SEND)."),
            ("delivered", "Messages delivered to consumers for the first time (or topic messages)."),
            ("redelivered", "Messages delivered again."),
            ("acked", "ACKs."),
            ("nacked", "NACKs."),
            ("expired", "Queue messages found expired: dead-lettered or dropped."),
        ):
            family = CounterMetricFamily(f"stompd_messages_{event}", documentation)
            family.add_metric([], messages.get(event, 0))
            yield family
        yield _counter(
            "stompd_messages_dead_lettered", "Queue messages moved to a dead-letter queue, by reason.", "reason", counters.dead_lettered
        )
        yield _counter(
            "stompd_messages_dropped",
            "Queue messages taken out without an ACK and with no dead-letter queue to go to, by reason.",
            "reason",
            counters.dropped,
        )
        yield _counter("stompd_errors_sent", "ERROR frames sent, by message.", "message", counters.errors)
        slow = CounterMetricFamily("stompd_slow_consumer_disconnects", "Clients disconnected for not reading.")
        slow.add_metric([], counters.errors.get("slow consumer", 0))
        yield slow
        yield _counter("stompd_limit_hits", "Connections and SENDs refused by [limits] and [queues] max-depth.", "limit", broker.admission.log.hits)
        yield self._latencies()
        yield from self._queues()
        yield from self._connectors()

    def _latencies(self):
        family = HistogramMetricFamily(
            "stompd_storage_call_seconds", "How long store calls took, by operation.", labels=["operation"]
        )
        for operation, histogram in sorted(getattr(self._broker.store, "latencies", {}).items()):
            cumulative, buckets = 0, []
            for bound, count in zip((*LATENCY_BUCKETS, float("inf")), histogram.counts):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            family.add_metric([operation], buckets, histogram.total)
        return family

    def _queues(self):
        ready = GaugeMetricFamily("stompd_queue_messages_ready", "Messages waiting in a queue, as last seen.", labels=["vhost", "queue"])
        unacked = GaugeMetricFamily("stompd_queue_messages_unacked", "Messages delivered and not yet acknowledged, by consumers on this node.", labels=["vhost", "queue"])
        consumers = GaugeMetricFamily("stompd_queue_consumers", "Consumers on this node.", labels=["vhost", "queue"])
        for vhost in self._broker.vhosts.values():
            for key, queue in vhost.queues.items():
                labels = [vhost.name, key]
                ready.add_metric(labels, queue.depth)
                unacked.add_metric(labels, sum(len(subscription.unacked) for subscription in queue.consumers))
                consumers.add_metric(labels, len(queue.consumers))
        yield ready
        yield unacked
        yield consumers

    def _connectors(self):
        up = GaugeMetricFamily("stompd_connector_upstreams_connected", "Upstream brokers a connector is connected to.", labels=["connector"])
        backlog = GaugeMetricFamily(
            "stompd_connector_backlog", "Forwarded frames waiting for an upstream: buffered or unconfirmed.", labels=["connector"]
        )
        for connector in self._broker.connectors.connectors:
            up.add_metric([connector.name], connector.upstreams_connected())
            backlog.add_metric([connector.name], connector.backlog())
        yield up
        yield backlog


def render(broker) -> bytes:
    """
    The broker's metrics in Prometheus' text format.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BrokerCollector(broker))
    return generate_latest(registry)
