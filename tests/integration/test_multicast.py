"""
Multicast discovery between real stompd processes in two network
namespaces the test creates (a veth pair, multicast routed over it only):
upstreams advertise, a fanout node finds them, fans out to them, and lets
one go when it stops.
"""

import ast
import os
import shutil
import sys
import textwrap
from pathlib import Path

import pytest

from tests.integration.test_fanout import fanout_config
from tests.support.broker import BrokerProcess, wait_for_log
from tests.support.netns import veth_pair

pytestmark = pytest.mark.integration

GROUP = "multicast://239.255.2.3:6155?group=stompd-test"


@pytest.fixture
def network():
    pair = veth_pair(str(os.getpid()))
    yield pair
    pair.remove()


def published_through(network, fanout_address: str, upstream_address: str, body: str) -> list:
    """
    From a client in the fanout node's namespace: subscribe to
    C{/topic/found} on the upstream, publish C{body} there through the
    fanout node, and return the bodies the upstream subscriber got.
    """
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {os.getcwd()!r})
        from tests.support.clients import stomp_client, subscribe_with_receipt
        upstream = stomp_client(61613, host={upstream_address!r})
        subscribe_with_receipt(upstream, "/topic/found", id="f")
        producer = stomp_client(61613, host={fanout_address!r})
        producer.send("/topic/found", {body!r}, headers={{"receipt": "r"}})
        producer.collector.wait_for_receipt("r")
        print(repr(upstream.collector.wait_for_bodies(1)))
        """
    )
    ran = network.run(1, sys.executable, "-c", script)
    assert ran.returncode == 0, ran.stderr
    return ast.literal_eval(ran.stdout.strip())


def test_a_fanout_finds_advertised_upstreams_in_another_namespace(network, tmp_path):
    upstream_address, fanout_address = network.addresses
    started = []
    try:
        for n, port in enumerate((61613, 61614)):
            advertise = (
                f'[discovery]\nadvertise = ["{GROUP}"]\nadvertise-uri = "tcp://{upstream_address}:{port}"\n'
                # The fanout and the client log in as guest from the other namespace.
                "[auth]\nguest-loopback-only = false\n"
            )
            started.append(
                BrokerProcess(tmp_path / f"upstream{n}", advertise, port=port, netns=network.names[0], interface=upstream_address)
            )
        config = fanout_config([], prefixes='["/topic/"]').replace("fanout://(static:())", f"fanout://({GROUP})")
        # Its client logs in as guest from its namespace's address.
        config += "[auth]\nguest-loopback-only = false\n"
        node = BrokerProcess(tmp_path / "fanout", config, port=61613, netns=network.names[1], interface=fanout_address)
        started.append(node)
        wait_for_log(node, "broadcast: connected to upstream", count=2)
        assert published_through(network, fanout_address, upstream_address, "over the veth") == ["over the veth"]
        # A stopping upstream says it is dead; the fanout lets it go.
        started[1].stop()
        wait_for_log(node, f"broadcast: upstream tcp://{upstream_address}:61614 gone")
    finally:
        for broker in started:
            broker.stop()
    for broker in started:
        assert "Traceback" not in broker.log, broker.log[-3000:]


def test_a_fanout_finds_an_activemq_broker_by_its_adverts(network, tmp_path):
    from tests.support.refbrokers import INSTALLED, REFBROKERS

    if not os.path.exists(INSTALLED["activemq"]):
        pytest.skip("ActiveMQ is not installed")
    activemq_address, fanout_address = network.addresses
    state = tmp_path / "activemq-state"
    start = network.run(
        0, sys.executable, str(REFBROKERS), "start", "activemq", "--stomp-port", "61613",
        "--address", activemq_address, "--discovery-uri", GROUP, "--state-dir", str(state), timeout=240,
    )
    assert start.returncode == 0, start.stderr[-3000:]
    node = None
    try:
        config = fanout_config([], "minAckCount=1", prefixes='["/topic/"]').replace(
            "fanout://(static:())", f"fanout://({GROUP})"
        )
        config += "[auth]\nguest-loopback-only = false\n"
        node = BrokerProcess(tmp_path / "fanout", config, port=61613, netns=network.names[1], interface=fanout_address)
        # ActiveMQ advertises its STOMP connector as stomp://HOST:PORT.
        wait_for_log(node, f"broadcast: connected to upstream stomp://{activemq_address}:61613", timeout=30)
        assert published_through(network, fanout_address, activemq_address, "to activemq") == ["to activemq"]
    finally:
        if node is not None:
            node.stop()
        network.run(0, sys.executable, str(REFBROKERS), "stop", "activemq", "--state-dir", str(state), timeout=120)


ACTIVEMQ_CLIENT_JARS = ":".join(
    f"/usr/share/java/{jar}.jar" for jar in ("activemq-client", "slf4j-api", "geronimo-jms_1.1_spec", "hawtbuf")
)
FIND_BROKERS = Path(__file__).resolve().parents[1] / "support" / "java" / "FindBrokers.java"


def test_activemqs_own_discovery_agent_finds_a_stompd_broker(network, tmp_path):
    if not os.path.exists("/usr/share/java/activemq-client.jar") or shutil.which("javac") is None:
        if os.environ.get("CI"):
            pytest.fail("ActiveMQ's client jars and a JDK are needed; .ci/run installs them")
        pytest.skip("ActiveMQ's client jars or a JDK are missing")
    address = network.addresses[0]
    advertise = f'[discovery]\nadvertise = ["{GROUP}"]\nadvertise-uri = "tcp://{address}:61613"\n'
    node = BrokerProcess(tmp_path / "advertised", advertise, port=61613, netns=network.names[0], interface=address)
    try:
        found = network.run(
            1, "java", "-Djava.net.preferIPv4Stack=true", "-cp", ACTIVEMQ_CLIENT_JARS, str(FIND_BROKERS),
            "multicast://239.255.2.3:6155", "stompd-test", "20000",
        )
        assert found.returncode == 0, found.stderr[-2000:]
        name, service = found.stdout.split()
        assert service == f"tcp://{address}:61613"
        assert name in node.log
    finally:
        node.stop()
