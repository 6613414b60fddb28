#!/usr/bin/env python3
"""Run the stomp_load scenarios against several brokers and print them side by side.

Usage::

    python benchmarks/compare.py --broker stompd=127.0.0.1:61613,ws=15674 \\
        --broker rabbitmq=127.0.0.1:61623,ws=15684 --broker activemq=127.0.0.1:61633 \\
        [--scenario all|fanout|wsfanout|fanout-2node|queue|queue-persistent|
                    queue-visibility|queue-priority|queue-header|latency|large|large-fanout[,...]]
    python benchmarks/compare.py --start-stompd --start-stompd-redis \\
        --broker rabbitmq=127.0.0.1:61623,ws=15684 --broker activemq=127.0.0.1:61633 \\
        --scenario queue-persistent,queue
    python benchmarks/compare.py --start-stompd --start-stompd-redis --scenario fanout,fanout-2node

A broker is ``NAME=HOST:PORT``, then optionally ``,ws=PORT`` (its STOMP over
WebSocket port, on the same host), ``,ws-path=/PATH`` (default ``/ws``) and
``,peer=PORT`` (the STOMP port of a second node of the same broker, on the
same host), then optionally ``?login=..&passcode=..&vhost=..`` to override
the global ``--login``/``--passcode``/``--vhost`` for that broker.
``wsfanout`` runs only on brokers with a ``ws`` port and ``fanout-2node``
only on brokers with a ``peer`` port; ``all`` includes each when at least
one broker can run it.  ``--scenario`` takes one scenario or several,
comma-separated, run in that order.  Options that compare.py does not know
(``--messages 10000``, ``--duration-limit 30``, ``--ws-producer`` ...) are
passed to every stomp_load.py run.

Scenarios run one broker at a time, scenario by scenario (fanout on every
broker, then queue on every broker ...), each in a fresh stomp_load.py
process, so brokers never compete with each other for the machine.

``--start-stompd`` starts ``<venv>/bin/twistd -n --pidfile= stompd --listen
tcp:PORT:interface=127.0.0.1 --listen-ws tcp:WSPORT:interface=127.0.0.1``
(the venv of the Python running this script; stompd must be installed in
it, e.g. by ``make install``), adds it as the first broker, ``stompd``, and
stops it with SIGTERM by process id when done.  That stompd uses its default
memory store.

``--start-stompd-redis`` starts a private ``redis-server`` (loopback, a
spare port, its own directory, append-only file with ``appendfsync
everysec``, no RDB snapshots) and a stompd node on it with ``storage.backend
= "redis"``, and adds it as the broker ``stompd-redis``.  For
``fanout-2node`` it starts a second node on the same Redis just before that
scenario and stops it right after, so the other scenarios measure one node
alone.  Everything is stopped by process id at the end and the Redis
directory removed.  ``--taskset CPUS`` runs the processes compare.py starts
under ``taskset -c CPUS``.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
STOMP_LOAD = os.path.join(HERE, "stomp_load.py")
SCENARIOS = ("fanout", "wsfanout", "fanout-2node", "queue", "queue-persistent",
             "queue-visibility", "queue-priority", "queue-header", "queue-auto", "latency", "large",
             "large-fanout")
# Scenarios that need the broker's WebSocket port.
WS_SCENARIOS = ("wsfanout",)
# Scenarios that need a second node of the broker (its peer port).
PEER_SCENARIOS = ("fanout-2node",)

sys.path.insert(0, HERE)
import wsclient  # noqa: E402  (next to this script, not an installed package)


def log(message):
    """Progress on stderr; the table goes to stdout."""
    print(message, file=sys.stderr, flush=True)


class Broker:
    """One broker under test: a display name and how to reach it.

    ``ws_port`` is its STOMP-over-WebSocket port on the same host, or None
    when it has none (then it sits out the WebSocket scenarios).
    ``peer_port`` is the STOMP port of a second node of the same broker on
    the same host, or None (then it sits out ``fanout-2node``).
    """

    def __init__(self, name, host, port, login, passcode, vhost, ws_port=None, ws_path="/ws",
                 peer_port=None):
        self.name = name
        self.host = host
        self.port = port
        self.login = login
        self.passcode = passcode
        self.vhost = vhost
        self.ws_port = ws_port
        self.ws_path = ws_path
        self.peer_port = peer_port

    def can_run(self, scenario):
        """False when the broker lacks what ``scenario`` needs (a ws or peer port)."""
        if scenario in WS_SCENARIOS:
            return self.ws_port is not None
        if scenario in PEER_SCENARIOS:
            return self.peer_port is not None
        return True

    @classmethod
    def parse(cls, spec, defaults):
        """Parse ``NAME=HOST:PORT[,ws=PORT][,ws-path=/PATH][,peer=PORT][?login=..&passcode=..&vhost=..]``."""
        name, sep, rest = spec.partition("=")
        if not sep or not name:
            raise ValueError("expected NAME=HOST:PORT, got %r" % spec)
        address, _, query = rest.partition("?")
        address, *options = address.split(",")
        host, sep, port = address.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError("expected NAME=HOST:PORT, got %r" % spec)
        transport = {}
        for option in options:
            key, sep, value = option.partition("=")
            if not sep or key not in ("ws", "ws-path", "peer"):
                raise ValueError("expected ,ws=PORT, ,ws-path=/PATH or ,peer=PORT after HOST:PORT, "
                                 "got %r in %r" % (option, spec))
            transport[key] = value
        for key in ("ws", "peer"):
            if key in transport and not transport[key].isdigit():
                raise ValueError("%s=%r is not a port number in %r" % (key, transport[key], spec))
        if not transport.get("ws-path", "/").startswith("/"):
            raise ValueError("ws-path must start with / in %r" % spec)
        extra = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        unknown = set(extra) - {"login", "passcode", "vhost"}
        if unknown:
            raise ValueError("unknown broker option(s) %s in %r" % (sorted(unknown), spec))
        return cls(name, host.strip("[]") or "127.0.0.1", int(port),
                   extra.get("login", defaults.login),
                   extra.get("passcode", defaults.passcode),
                   extra.get("vhost", defaults.vhost),
                   ws_port=int(transport["ws"]) if "ws" in transport else None,
                   ws_path=transport.get("ws-path", "/ws"),
                   peer_port=int(transport["peer"]) if "peer" in transport else None)


# -- stompd under our control ----------------------------------------------


def wait_for_stomp(host, port, proc, timeout):
    """Wait until ``host:port`` answers a STOMP CONNECT; False if ``proc`` dies or time runs out."""
    deadline = time.monotonic() + timeout
    frame = b"CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n\n\x00"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=1.0) as sock:
                sock.sendall(frame)
                reply = sock.recv(4096)
                # CONNECTED, or an ERROR because guest is refused: either way
                # the broker is up and speaking STOMP.
                if reply.lstrip(b"\r\n").startswith((b"CONNECTED", b"ERROR")):
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def wait_for_websocket(host, port, path, proc, timeout):
    """Wait until ``ws://host:port/path`` completes a WebSocket handshake.

    False if ``proc`` dies or ``timeout`` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            ws = wsclient.connect(host, port, path, ("v12.stomp",), timeout=1.0)
        except OSError:
            time.sleep(0.2)
            continue
        ws.close()
        return True
    return False


def port_in_use(port):
    """True when something listens on 127.0.0.1:``port``."""
    probe = socket.socket()
    # SO_REUSEADDR as twistd uses it: connections of an earlier run in
    # TIME_WAIT must not count as "in use", a listener must.
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind(("127.0.0.1", port))
    except OSError:
        return True
    finally:
        probe.close()
    return False


def spare_port():
    """A loopback TCP port that is free right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def pinned(cmd, cpus):
    """``cmd`` run under ``taskset -c cpus`` when ``cpus`` is given (taskset execs, so the pid stays)."""
    return ["taskset", "-c", cpus] + cmd if cpus else cmd


class StompdProcess:
    """A ``twistd -n stompd`` child listening on loopback (STOMP and WebSocket), stopped by its pid.

    ``config`` is the text of a TOML configuration file to start it with
    (None: stompd's defaults, the memory store); ``name`` is used in
    messages and in the name of its working directory; ``cpus``, when given,
    pins it with ``taskset -c``.
    """

    def __init__(self, port, ws_port, twistd, start_timeout=30.0, config=None, name="stompd",
                 cpus=None, port_option="--stompd-port", ws_port_option="--stompd-ws-port"):
        self.port = port
        self.ws_port = ws_port
        self.twistd = twistd
        self.start_timeout = start_timeout
        self.config = config
        self.name = name
        self.cpus = cpus
        self.port_option = port_option
        self.ws_port_option = ws_port_option
        self.proc = None
        self.workdir = None
        self.log_path = None

    @property
    def pid(self):
        """The process id, or None before start."""
        return self.proc.pid if self.proc is not None else None

    def start(self):
        """Start stompd and wait for its STOMP and WebSocket ports; raise RuntimeError on failure."""
        if port_in_use(self.port):
            raise RuntimeError("127.0.0.1:%d is already in use; pick %s" % (self.port, self.port_option))
        if port_in_use(self.ws_port):
            raise RuntimeError("127.0.0.1:%d is already in use; pick %s "
                               "(0 for any free port)" % (self.ws_port, self.ws_port_option))
        if not os.access(self.twistd, os.X_OK):
            raise RuntimeError("no twistd at %s (pass --twistd)" % self.twistd)
        # Its own working directory, so nothing twistd writes lands in the tree.
        self.workdir = tempfile.mkdtemp(prefix="%s-bench-" % self.name)
        self.log_path = os.path.join(self.workdir, "stompd.log")
        cmd = [self.twistd, "-n", "--pidfile=", "stompd"]
        if self.config is not None:
            config_path = os.path.join(self.workdir, "stompd.toml")
            with open(config_path, "w") as handle:
                handle.write(self.config)
            cmd += ["--config", config_path]
        # Both listeners explicitly on loopback: stompd's default WebSocket
        # listener is tcp:15674 on every interface.
        cmd += ["--listen", "tcp:%d:interface=127.0.0.1" % self.port,
                "--listen-ws", "tcp:%d:interface=127.0.0.1" % self.ws_port]
        cmd = pinned(cmd, self.cpus)
        log("starting %s: %s" % (self.name, " ".join(cmd)))
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=self.workdir, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT)
        if not (wait_for_stomp("127.0.0.1", self.port, self.proc, self.start_timeout)
                and wait_for_websocket("127.0.0.1", self.ws_port, "/ws", self.proc, 5.0)):
            self.stop(keep_log=True)
            raise RuntimeError("%s did not come up on 127.0.0.1:%d and ws://127.0.0.1:%d/ws; "
                               "log:\n%s" % (self.name, self.port, self.ws_port, self.log_tail()))
        log("%s running, pid %d, STOMP on %d, WebSocket on %d, log %s"
            % (self.name, self.proc.pid, self.port, self.ws_port, self.log_path))

    def log_tail(self, lines=30):
        """The end of stompd's log, for error messages."""
        try:
            with open(self.log_path, errors="replace") as handle:
                return "".join(handle.readlines()[-lines:])
        except (OSError, TypeError):
            return "(no log)"

    def stop(self, keep_log=False):
        """SIGTERM by pid, wait, SIGKILL if it will not go; tidy up unless something went wrong."""
        if self.proc is not None and self.proc.poll() is None:
            log("stopping %s (SIGTERM to pid %d)" % (self.name, self.proc.pid))
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                log("%s ignored SIGTERM; SIGKILL to pid %d" % (self.name, self.proc.pid))
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.workdir is None:
            return
        if keep_log or self.proc is None or self.proc.returncode != 0:
            log("%s log kept: %s" % (self.name, self.log_path))
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir = None


def wait_for_redis(port, proc, timeout):
    """Wait until 127.0.0.1:``port`` answers PING; False if ``proc`` dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(64).startswith(b"+PONG"):
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


class RedisProcess:
    """A private ``redis-server`` on 127.0.0.1, in a directory of its own, stopped by its pid.

    Durability as a production setup would have it: the append-only file
    with ``appendfsync everysec`` (one fsync a second, at most a second of
    writes lost in a power cut) and no RDB snapshots, which would fork
    during the measurement.
    """

    def __init__(self, port, server="redis-server", cpus=None, start_timeout=15.0):
        self.port = port
        self.server = server
        self.cpus = cpus
        self.start_timeout = start_timeout
        self.proc = None
        self.workdir = None

    @property
    def url(self):
        """The ``[storage.redis] url`` for this server."""
        return "redis://127.0.0.1:%d/0" % self.port

    def start(self):
        """Start redis-server and wait for PING; raise RuntimeError on failure."""
        if shutil.which(self.server) is None:
            raise RuntimeError("no %s found (install redis-server or pass --redis-server)" % self.server)
        if port_in_use(self.port):
            raise RuntimeError("127.0.0.1:%d is already in use; pick --redis-port" % self.port)
        self.workdir = tempfile.mkdtemp(prefix="stompd-bench-redis-")
        cmd = pinned([self.server, "--port", str(self.port), "--bind", "127.0.0.1",
                      "--dir", self.workdir, "--appendonly", "yes", "--appendfsync", "everysec",
                      "--save", "", "--daemonize", "no"], self.cpus)
        log("starting redis: %s" % " ".join(c if c else "''" for c in cmd))
        with open(os.path.join(self.workdir, "redis.log"), "wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=self.workdir, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT)
        if not wait_for_redis(self.port, self.proc, self.start_timeout):
            self.stop(keep_files=True)
            raise RuntimeError("redis-server did not answer PING on 127.0.0.1:%d; see %s/redis.log"
                               % (self.port, self.workdir))
        log("redis running, pid %d, port %d, dir %s" % (self.proc.pid, self.port, self.workdir))

    def stop(self, keep_files=False):
        """SIGTERM by pid (Redis flushes the append-only file and exits), SIGKILL if it will not go."""
        if self.proc is not None and self.proc.poll() is None:
            log("stopping redis (SIGTERM to pid %d)" % self.proc.pid)
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                log("redis ignored SIGTERM; SIGKILL to pid %d" % self.proc.pid)
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.workdir is None:
            return
        if keep_files:
            log("redis directory kept: %s" % self.workdir)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir = None


REDIS_NODE_CONFIG = """\
# Written by benchmarks/compare.py for one run.
node-id = "%(node)s"

[storage]
backend = "redis"

[storage.redis]
url = "%(url)s"
key-prefix = "stompd-bench:"
timeout = 5.0
"""


class StompdRedisSetup:
    """A private redis-server and stompd nodes on it, which act as one broker.

    Node ``a`` (``port``, ``ws_port``) runs for the whole run; node ``b``
    (``peer_port``, a spare WebSocket port) only between ``start_peer`` and
    ``stop_peer``: every topic message goes to every node through Redis
    pub/sub, so an idle second node would take CPU from the first in the
    other scenarios.
    """

    def __init__(self, port, ws_port, peer_port, redis_port, twistd, redis_server="redis-server",
                 cpus=None):
        self.redis = RedisProcess(redis_port, redis_server, cpus=cpus)
        self.node_a = StompdProcess(
            port, ws_port, twistd, config=REDIS_NODE_CONFIG % {"node": "bench-a", "url": self.redis.url},
            name="stompd-redis", cpus=cpus, port_option="--stompd-redis-port",
            ws_port_option="--stompd-redis-port")
        self.node_b = StompdProcess(
            peer_port, spare_port(), twistd,
            config=REDIS_NODE_CONFIG % {"node": "bench-b", "url": self.redis.url},
            name="stompd-redis-b", cpus=cpus, port_option="--stompd-redis-peer-port",
            ws_port_option="--stompd-redis-peer-port")

    def start(self):
        """Start Redis, then node a; raise RuntimeError (with everything stopped) on failure."""
        try:
            self.redis.start()
            self.node_a.start()
        except RuntimeError:
            self.stop(failed=True)
            raise

    def start_peer(self):
        """Start node b on the same Redis; raise RuntimeError on failure."""
        self.node_b.start()

    def stop_peer(self, failed=False):
        """Stop node b, if it runs."""
        self.node_b.stop(keep_log=failed)

    def nodes(self):
        """The stompd processes that run now."""
        return [n for n in (self.node_a, self.node_b) if n.proc is not None and n.proc.poll() is None]

    def stop(self, failed=False):
        """Stop the nodes, then Redis, each by its pid."""
        self.node_b.stop(keep_log=failed)
        self.node_a.stop(keep_log=failed)
        self.redis.stop(keep_files=failed)


# -- running and tabulating ------------------------------------------------


def run_one(broker, scenario, passthrough, timeout):
    """Run one scenario against one broker in a fresh stomp_load.py; return its result dict."""
    cmd = [sys.executable, STOMP_LOAD, "--host", broker.host, "--port", str(broker.port),
           "--login", broker.login, "--passcode", broker.passcode, "--vhost", broker.vhost,
           "--scenario", scenario, "--json"]
    where = "%s:%d" % (broker.host, broker.port)
    if broker.ws_port is not None:
        cmd += ["--ws-port", str(broker.ws_port), "--ws-path", broker.ws_path]
        if scenario in WS_SCENARIOS:
            where += ", ws://%s:%d%s" % (broker.host, broker.ws_port, broker.ws_path)
    if broker.peer_port is not None and scenario in PEER_SCENARIOS:
        cmd += ["--subscriber-broker", "%s:%d" % (broker.host, broker.peer_port)]
        where += ", subscribers on %s:%d" % (broker.host, broker.peer_port)
    cmd += passthrough
    log("running %s against %s (%s)" % (scenario, broker.name, where))
    started = time.monotonic()
    try:
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"scenario": scenario, "ok": False,
                "error": "stomp_load.py did not finish within %ss" % timeout}
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if not results:
        return {"scenario": scenario, "ok": False,
                "error": "no result (exit %d): %s" % (done.returncode, done.stderr.strip()[-2000:])}
    result = results[-1]
    if not result.get("ok"):
        # Show stomp_load's own loud report for failed runs.
        sys.stderr.write(done.stderr)
    log("  %s on %s: %s in %.1fs" % (scenario, broker.name,
                                     "ok" if result.get("ok") else "FAILED",
                                     time.monotonic() - started))
    return result


def _get(result, path):
    value = result
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


# (scenario, label, path into the result, format)
ROWS = [
    ("fanout", "published msgs/s", "publish_rate", "{:,.0f}"),
    ("fanout", "delivered msgs/s (all subs)", "delivery_rate", "{:,.0f}"),
    ("fanout", "slowest subscriber msgs/s", "slowest_subscriber_rate", "{:,.0f}"),
    ("fanout", "elapsed s", "elapsed_s", "{:.2f}"),
    ("wsfanout", "published msgs/s", "publish_rate", "{:,.0f}"),
    ("wsfanout", "delivered msgs/s (all subs)", "delivery_rate", "{:,.0f}"),
    ("wsfanout", "slowest subscriber msgs/s", "slowest_subscriber_rate", "{:,.0f}"),
    ("wsfanout", "elapsed s", "elapsed_s", "{:.2f}"),
    ("fanout-2node", "published msgs/s", "publish_rate", "{:,.0f}"),
    ("fanout-2node", "delivered msgs/s (all subs)", "delivery_rate", "{:,.0f}"),
    ("fanout-2node", "slowest subscriber msgs/s", "slowest_subscriber_rate", "{:,.0f}"),
    ("fanout-2node", "elapsed s", "elapsed_s", "{:.2f}"),
    ("queue", "msgs/s end to end", "rate", "{:,.0f}"),
    ("queue", "published msgs/s", "publish_rate", "{:,.0f}"),
    ("queue", "send to receipt p50 ms", "latency_ms.p50", "{:.1f}"),
    ("queue", "send to receipt p99 ms", "latency_ms.p99", "{:.1f}"),
    ("queue", "elapsed s", "elapsed_s", "{:.2f}"),
    ("queue-persistent", "msgs/s end to end", "rate", "{:,.0f}"),
    ("queue-persistent", "published msgs/s", "publish_rate", "{:,.0f}"),
    ("queue-persistent", "send to receipt p50 ms", "latency_ms.p50", "{:.1f}"),
    ("queue-persistent", "send to receipt p99 ms", "latency_ms.p99", "{:.1f}"),
    ("queue-persistent", "elapsed s", "elapsed_s", "{:.2f}"),
    ("queue-visibility", "msgs/s end to end", "rate", "{:,.0f}"),
    ("queue-priority", "msgs/s end to end", "rate", "{:,.0f}"),
    ("queue-header", "msgs/s end to end", "rate", "{:,.0f}"),
    ("queue-auto", "msgs/s end to end", "rate", "{:,.0f}"),
    ("large", "MB/s delivered", "delivered_mb_s", "{:,.0f}"),
    ("large", "msgs/s delivered", "delivery_rate", "{:,.0f}"),
    ("large-fanout", "MB/s delivered (all subs)", "delivered_mb_s", "{:,.0f}"),
    ("large-fanout", "msgs/s delivered (all subs)", "delivery_rate", "{:,.0f}"),
    ("latency", "achieved send rate msgs/s", "achieved_rate", "{:,.0f}"),
    ("latency", "p50 ms", "latency_ms.p50", "{:.3f}"),
    ("latency", "p90 ms", "latency_ms.p90", "{:.3f}"),
    ("latency", "p99 ms", "latency_ms.p99", "{:.3f}"),
    ("latency", "p99.9 ms", "latency_ms.p999", "{:.3f}"),
    ("latency", "max ms", "latency_ms.max", "{:.3f}"),
]


def verdict(result):
    """Short cell text for the verification row."""
    if result is None:
        return "-"
    if result.get("error"):
        return "ERROR"
    if result.get("ok"):
        return "ok"
    bad = ["%s %s" % (result[k], k) for k in ("lost", "duplicates", "corrupt") if result.get(k)]
    return "FAIL " + ", ".join(bad) if bad else "FAIL"


def format_table(brokers, scenarios, results):
    """Render the side-by-side table as text."""
    header = ["scenario", "metric"] + [b.name for b in brokers]
    rows = []
    for scenario in scenarios:
        for row_scenario, label, path, fmt in ROWS:
            if row_scenario != scenario:
                continue
            cells = []
            for broker in brokers:
                value = _get(results.get((broker.name, scenario)) or {}, path)
                cells.append(fmt.format(value) if isinstance(value, (int, float)) else "-")
            rows.append([scenario, label] + cells)
        rows.append([scenario, "verified"] +
                    [verdict(results.get((b.name, scenario))) for b in brokers])
        rows.append([scenario, "wall s"] +
                    ["{:.1f}".format(_get(results.get((b.name, scenario)) or {}, "wall_s"))
                     if _get(results.get((b.name, scenario)) or {}, "wall_s") is not None else "-"
                     for b in brokers])
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    lines = []
    for n, row in enumerate([header] + rows):
        cells = [str(c).ljust(widths[i]) if i < 2 else str(c).rjust(widths[i])
                 for i, c in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def parse_scenarios(text):
    """``all`` or a comma-separated list of scenario names, in order; raise ValueError."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError("--scenario: give a scenario name")
    unknown = [n for n in names if n not in ("all",) + SCENARIOS]
    if unknown:
        raise ValueError("--scenario: unknown %s (choose from all, %s)"
                         % (", ".join(unknown), ", ".join(SCENARIOS)))
    if "all" in names and len(names) > 1:
        raise ValueError("--scenario: all cannot be combined with other scenarios")
    if len(set(names)) != len(names):
        raise ValueError("--scenario: a scenario is named twice")
    return names


def main(argv=None):
    """Parse options, optionally start stompd (memory and/or Redis), run everything, print the table."""
    parser = argparse.ArgumentParser(
        description="Run stomp_load.py scenarios against several brokers; print a table. "
                    "Unknown options are passed on to stomp_load.py.")
    parser.add_argument("--broker", action="append", default=[],
                        metavar="NAME=HOST:PORT[,ws=PORT][,peer=PORT]",
                        help="a broker to measure (repeatable); ,ws=PORT gives its STOMP over "
                             "WebSocket port (and ,ws-path=/PATH its path, default /ws), "
                             ",peer=PORT the STOMP port of a second node for fanout-2node")
    parser.add_argument("--scenario", default="all", metavar="NAME[,NAME...]",
                        help="all (default) or one or more of %s, comma-separated"
                             % ", ".join(SCENARIOS))
    parser.add_argument("--login", default="guest")
    parser.add_argument("--passcode", default="guest")
    parser.add_argument("--vhost", default="/")
    parser.add_argument("--start-stompd", action="store_true",
                        help="start stompd (memory store) with twistd for the run as broker "
                             "'stompd' and stop it afterwards")
    parser.add_argument("--stompd-port", type=int, default=61613)
    parser.add_argument("--stompd-ws-port", type=int, default=15674,
                        help="WebSocket port of the started stompd (default 15674; 0: any free port)")
    parser.add_argument("--start-stompd-redis", action="store_true",
                        help="start a private redis-server (AOF, fsync every second) and stompd "
                             "on it as broker 'stompd-redis'; a second node for fanout-2node")
    parser.add_argument("--stompd-redis-port", type=int, default=61653,
                        help="STOMP port of the Redis-backed stompd (default 61653; its "
                             "WebSocket port is any free one)")
    parser.add_argument("--stompd-redis-peer-port", type=int, default=61654,
                        help="STOMP port of its second node, for fanout-2node (default 61654)")
    parser.add_argument("--redis-port", type=int, default=0,
                        help="port of the started redis-server (default 0: any free port)")
    parser.add_argument("--redis-server", default="redis-server",
                        help="the redis-server to start (default: redis-server on PATH)")
    parser.add_argument("--taskset", default=None, metavar="CPUS",
                        help="run the stompd and redis-server processes compare.py starts under "
                             "taskset -c CPUS (e.g. 1); brokers started elsewhere are not touched")
    parser.add_argument("--twistd", default=os.path.join(os.path.dirname(sys.executable), "twistd"),
                        help="twistd to start stompd with (default: next to this Python)")
    parser.add_argument("--run-timeout", type=float, default=300.0,
                        help="seconds one stomp_load.py run may take before it is killed")
    parser.add_argument("--json", action="store_true",
                        help="also print all results as one JSON object")
    args, passthrough = parser.parse_known_args(argv)

    try:
        brokers = [Broker.parse(spec, args) for spec in args.broker]
        requested = parse_scenarios(args.scenario)
    except ValueError as exc:
        parser.error(str(exc))
    if args.taskset and shutil.which("taskset") is None:
        parser.error("--taskset needs the taskset command (util-linux)")
    if args.start_stompd_redis:
        if any(b.name == "stompd-redis" for b in brokers):
            parser.error("--start-stompd-redis adds a broker named stompd-redis; do not pass one too")
        ports = [args.stompd_redis_port, args.stompd_redis_peer_port]
        if args.start_stompd:
            ports.append(args.stompd_port)
        if len(set(ports)) != len(ports):
            parser.error("--stompd-port, --stompd-redis-port and --stompd-redis-peer-port must differ")
        redis_setup = StompdRedisSetup(
            args.stompd_redis_port, spare_port(), args.stompd_redis_peer_port,
            args.redis_port or spare_port(), args.twistd, args.redis_server, cpus=args.taskset)
        brokers.insert(0, Broker("stompd-redis", "127.0.0.1", args.stompd_redis_port,
                                 args.login, args.passcode, args.vhost,
                                 ws_port=redis_setup.node_a.ws_port, ws_path="/ws",
                                 peer_port=args.stompd_redis_peer_port))
    else:
        redis_setup = None
    if args.start_stompd:
        if any(b.name == "stompd" for b in brokers):
            parser.error("--start-stompd adds a broker named stompd; do not pass one too")
        if args.stompd_ws_port == 0:
            args.stompd_ws_port = spare_port()
        brokers.insert(0, Broker("stompd", "127.0.0.1", args.stompd_port,
                                 args.login, args.passcode, args.vhost,
                                 ws_port=args.stompd_ws_port, ws_path="/ws"))
    if not brokers:
        parser.error("give at least one --broker NAME=HOST:PORT (or --start-stompd, "
                     "--start-stompd-redis)")
    names = [b.name for b in brokers]
    if len(set(names)) != len(names):
        parser.error("broker names must be unique")
    if requested == ["all"]:
        scenarios = [s for s in SCENARIOS if any(b.can_run(s) for b in brokers)]
    else:
        scenarios = requested
    for scenario in scenarios:
        if not any(b.can_run(scenario) for b in brokers):
            what = "a WebSocket port (NAME=HOST:PORT,ws=PORT)" if scenario in WS_SCENARIOS else \
                "a second node (NAME=HOST:PORT,peer=PORT or --start-stompd-redis)"
            parser.error("%s needs a broker with %s" % (scenario, what))

    stompd = (StompdProcess(args.stompd_port, args.stompd_ws_port, args.twistd, cpus=args.taskset)
              if args.start_stompd else None)
    results = {}

    def all_ok():
        return all(r.get("ok") for r in results.values())

    def check_alive(process, scenario):
        if process.workdir is not None and process.proc.poll() is not None:
            log("%s exited (status %s) during %s; log:\n%s"
                % (process.name, process.proc.returncode, scenario, process.log_tail()))

    try:
        try:
            if stompd:
                stompd.start()
            if redis_setup:
                redis_setup.start()
        except RuntimeError as exc:
            log("error: %s" % exc)
            return 2
        for scenario in scenarios:
            if redis_setup and scenario in PEER_SCENARIOS:
                try:
                    redis_setup.start_peer()
                except RuntimeError as exc:
                    log("error: %s" % exc)
                    results[("stompd-redis", scenario)] = {"scenario": scenario, "ok": False,
                                                           "error": str(exc)}
            for broker in brokers:
                if not broker.can_run(scenario):
                    log("skipping %s on %s: no %s given" % (
                        scenario, broker.name, "ws=PORT" if scenario in WS_SCENARIOS else "peer=PORT"))
                    continue
                if (broker.name, scenario) in results:
                    continue
                results[(broker.name, scenario)] = run_one(
                    broker, scenario, passthrough, args.run_timeout)
                if stompd and broker.name == "stompd":
                    check_alive(stompd, scenario)
                if redis_setup and broker.name == "stompd-redis":
                    for node in (redis_setup.node_a, redis_setup.node_b):
                        check_alive(node, scenario)
            if redis_setup and scenario in PEER_SCENARIOS:
                redis_setup.stop_peer(failed=not all_ok())
    finally:
        if redis_setup:
            redis_setup.stop(failed=not all_ok())
        if stompd:
            stompd.stop(keep_log=not all_ok())

    print(format_table(brokers, scenarios, results))
    if args.json:
        print(json.dumps({b.name: {s: results.get((b.name, s)) for s in scenarios}
                          for b in brokers}, sort_keys=True))
    failed = [k for k, r in results.items() if not r.get("ok")]
    if failed:
        log("FAILED: %s" % ", ".join("%s/%s" % k for k in failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
