#!/usr/bin/env python3
"""Run the stomp_load scenarios against several brokers and print them side by side.

Usage::

    python benchmarks/compare.py --broker stompd=127.0.0.1:61613,ws=15674 \\
        --broker rabbitmq=127.0.0.1:61623,ws=15684 --broker activemq=127.0.0.1:61633 \\
        [--scenario all|connections|fanout|wsfanout|fanout-2node|queue|queue-persistent|
                    queue-visibility|queue-priority|queue-header|latency|large|large-fanout[,...]]
    python benchmarks/compare.py --start-stompd --start-stompd-redis \\
        --broker rabbitmq=127.0.0.1:61623,ws=15684 --broker activemq=127.0.0.1:61633 \\
        --scenario queue-persistent,queue
    python benchmarks/compare.py --start-stompd --start-stompd-redis --scenario fanout,fanout-2node
    python benchmarks/compare.py --start-stompd --stompd-ws-port 0 --start-stompd-redis \\
        --start-stompd-nodes 2 --scenario queue,queue-auto,fanout

A broker is ``NAME=HOST:PORT``, then optionally ``,ws=PORT`` (its STOMP over
WebSocket port, on the same host), ``,ws-path=/PATH`` (default ``/ws``) and
``,peer=PORT`` (the STOMP port of a second node of the same broker, on the
same host), ``,pid=PID`` (its process id, for the memory figure of
``connections``), then optionally ``?login=..&passcode=..&vhost=..`` to override
the global ``--login``/``--passcode``/``--vhost`` for that broker.
``wsfanout`` runs only on brokers with a ``ws`` port and ``fanout-2node``
only on brokers with a ``peer`` port; ``all`` includes each when at least
one broker can run it.  ``--scenario`` takes one scenario or several,
comma-separated, run in that order.  Options that compare.py does not know
(``--messages 10000``, ``--duration-limit 30``, ``--ws-producer`` ...) are
passed to every stomp_load.py run.

``connections`` opens ``--connections`` idle connections (default 10,000)
with ``connections.py`` and reports how many were held, how fast they
opened and, for brokers with a known process id (those compare.py starts,
and ``,pid=PID``), the broker's RSS per connection; it is first in ``all``,
so that it meets fresh broker processes. The brokers compare.py starts
inherit its open-file limit (``ulimit -n``).

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

``--start-stompd-nodes N`` starts another private ``redis-server`` and N
stompd nodes on it (same url and key prefix, node ids ``bench-x1`` ...)
that all accept on one STOMP socket (``--stompd-nodes-port``) and one
WebSocket socket, which compare.py makes and hands to every node as
systemd's socket activation would (``systemd:domain=INET:index=0`` and
``index=1``); the kernel gives each new connection to one of them.  The
broker is ``stompd-redis-xN``; the table gets a row with the connections
each node took in each scenario.
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
CONNECTIONS = os.path.join(HERE, "connections.py")
SCENARIOS = ("connections", "fanout", "wsfanout", "fanout-2node", "queue", "queue-persistent",
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
                 peer_port=None, pids=()):
        self.name = name
        self.host = host
        self.port = port
        self.login = login
        self.passcode = passcode
        self.vhost = vhost
        self.ws_port = ws_port
        self.ws_path = ws_path
        self.peer_port = peer_port
        # Its processes, for the RSS of connections; known once started.
        self.pids = list(pids)

    def can_run(self, scenario):
        """False when the broker lacks what ``scenario`` needs (a ws or peer port)."""
        if scenario in WS_SCENARIOS:
            return self.ws_port is not None
        if scenario in PEER_SCENARIOS:
            return self.peer_port is not None
        return True

    @classmethod
    def parse(cls, spec, defaults):
        """Parse ``NAME=HOST:PORT[,ws=PORT][,ws-path=/PATH][,peer=PORT][,pid=PID][?login=..&passcode=..&vhost=..]``."""
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
            if not sep or key not in ("ws", "ws-path", "peer", "pid"):
                raise ValueError("expected ,ws=PORT, ,ws-path=/PATH, ,peer=PORT or ,pid=PID after "
                                 "HOST:PORT, got %r in %r" % (option, spec))
            transport[key] = value
        for key in ("ws", "peer", "pid"):
            if key in transport and not transport[key].isdigit():
                raise ValueError("%s=%r is not a number in %r" % (key, transport[key], spec))
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
                   peer_port=int(transport["peer"]) if "peer" in transport else None,
                   pids=[int(transport["pid"])] if "pid" in transport else ())


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
        # Both listeners explicitly on loopback: stompd's default WebSocket
        # listener is tcp:15674 on every interface.
        cmd = pinned(self._command("tcp:%d:interface=127.0.0.1" % self.port,
                                   "tcp:%d:interface=127.0.0.1" % self.ws_port), self.cpus)
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

    def _command(self, listen, listen_ws):
        """Make the working directory (and config file); return the twistd command line.

        Raise RuntimeError when there is no twistd to run.
        """
        if not os.access(self.twistd, os.X_OK):
            raise RuntimeError("no twistd at %s (pass --twistd)" % self.twistd)
        # Its own working directory, so nothing twistd writes lands in the tree.
        self.workdir = tempfile.mkdtemp(prefix="%s-bench-" % self.name)
        self.log_path = os.path.join(self.workdir, "stompd.log")
        # Absolute: the child runs in the working directory.
        cmd = [os.path.abspath(self.twistd), "-n", "--pidfile=", "stompd"]
        if self.config is not None:
            config_path = os.path.join(self.workdir, "stompd.toml")
            with open(config_path, "w") as handle:
                handle.write(self.config)
            cmd += ["--config", config_path]
        return cmd + ["--listen", listen, "--listen-ws", listen_ws]

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


# -- several stompd nodes behind one socket --------------------------------

# What each node's process runs first, doing what systemd does between fork
# and exec for a socket-activated service: it puts the listening sockets it
# inherited (argv[1], their descriptor numbers) at descriptors 3, 4 ..., sets
# LISTEN_PID to its own pid and execs twistd (argv[2:]), which keeps that
# pid. Twisted's systemd: endpoint takes the sockets only when LISTEN_PID is
# the process's own pid, which nobody knows before the fork.
ACTIVATE = """\
import fcntl, os, sys
fds = [int(fd) for fd in sys.argv[1].split(",")]
first = 3
# Copies above the targets first, so that no dup2 overwrites a socket still to be placed.
copies = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, first + len(fds)) for fd in fds]
for n, fd in enumerate(copies):
    os.dup2(fd, first + n)
for fd in fds + copies:
    if fd >= first + len(fds):
        os.close(fd)
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.argv[2], sys.argv[2:])
"""


def listening_socket(port, hint):
    """A TCP socket listening on 127.0.0.1:``port``, to hand to stompd nodes; raise RuntimeError.

    Made as systemd makes a ``ListenStream=`` socket (``stompd.socket``):
    ``SO_REUSEADDR``, ``TCP_NODELAY`` (inherited by accepted connections),
    a backlog of ``SOMAXCONN``. ``hint`` ends the error message: what to do
    when the port is taken.
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        raise RuntimeError("cannot listen on 127.0.0.1:%d (%s); %s"
                           % (port, exc.strerror, hint)) from None
    sock.listen(socket.SOMAXCONN)
    return sock


def wait_for_ready(notify, proc, timeout):
    """Wait for ``READY=1`` on the datagram socket ``notify``; False if ``proc`` dies or time runs out."""
    deadline = time.monotonic() + timeout
    notify.settimeout(0.2)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            message = notify.recv(4096)
        except socket.timeout:
            continue
        if b"READY=1" in message.split(b"\n"):
            return True
    return False


class ActivatedStompdProcess(StompdProcess):
    """A ``twistd -n stompd`` node that accepts on listening sockets it inherits, as under systemd.

    ``sockets`` are the STOMP and the WebSocket listening sockets, which
    the node gets as descriptors 3 and 4 with ``LISTEN_FDS``,
    ``LISTEN_FDNAMES`` and ``LISTEN_PID`` set as systemd sets them, and
    listens on with ``systemd:domain=INET:index=0`` and ``index=1``. Any
    number of nodes can share the same sockets: the kernel gives each new
    connection to one of the processes accepting on it. Ready once it sends
    ``READY=1`` to its ``NOTIFY_SOCKET`` (store, connectors and listeners
    up), as for systemd's ``Type=notify``.
    """

    def __init__(self, sockets, twistd, config, name, cpus=None, start_timeout=30.0):
        super().__init__(sockets[0].getsockname()[1], sockets[1].getsockname()[1], twistd,
                         start_timeout=start_timeout, config=config, name=name, cpus=cpus)
        self.sockets = sockets
        self.notify = None

    def spawn(self):
        """Start the node without waiting for it; raise RuntimeError when there is no twistd."""
        cmd = self._command("systemd:domain=INET:index=0", "systemd:domain=INET:index=1")
        fds = [s.fileno() for s in self.sockets]
        cmd = pinned([sys.executable, "-c", ACTIVATE, ",".join(map(str, fds))] + cmd, self.cpus)
        notify_path = os.path.join(self.workdir, "notify")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(notify_path)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("LISTEN_", "WATCHDOG_", "NOTIFY_SOCKET"))}
        # LISTEN_FDNAMES too: Twisted ignores LISTEN_FDS without as many names.
        env.update(LISTEN_FDS=str(len(fds)), LISTEN_FDNAMES="stomp:websocket",
                   NOTIFY_SOCKET=notify_path)
        log("starting %s: %s" % (self.name, " ".join("'<ACTIVATE>'" if c is ACTIVATE else c
                                                    for c in cmd)))
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=self.workdir, env=env, pass_fds=fds,
                                         stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT)

    def wait_ready(self):
        """Wait for the node's READY=1; raise RuntimeError (node stopped, log kept) if it fails."""
        try:
            ready = wait_for_ready(self.notify, self.proc, self.start_timeout)
        finally:
            self.notify.close()
            self.notify = None
        if not ready:
            status = self.proc.poll()
            self.stop(keep_log=True)
            why = ("exited (status %d) before READY=1" % status if status is not None
                   else "did not report READY=1 within %.0fs" % self.start_timeout)
            raise RuntimeError("%s %s; log:\n%s" % (self.name, why, self.log_tail()))
        log("%s running, pid %d, accepting on the shared ports %d and %d, log %s"
            % (self.name, self.proc.pid, self.port, self.ws_port, self.log_path))

    def start(self):
        """Start the node and wait until it is ready; raise RuntimeError on failure."""
        self.spawn()
        self.wait_ready()

    def connections_logged(self):
        """How many CONNECTED lines the node's log holds so far (one per STOMP connection)."""
        try:
            with open(self.log_path, "rb") as handle:
                return sum(1 for line in handle if b" CONNECTED session-" in line)
        except (OSError, TypeError):
            return 0


# A node of several behind one socket: REDIS_NODE_CONFIG, and CONNECTED's
# server header names the node a connection landed on.
REDIS_NODES_CONFIG = 'server-name = "%(node)s"\n' + REDIS_NODE_CONFIG


def stomp_server_header(port, timeout=5.0):
    """Connect to 127.0.0.1:``port``, CONNECT, and return ``(socket, server header)``; raise OSError."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock.sendall(b"CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n\n\x00")
        reply = b""
        while b"\x00" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                raise OSError("connection closed before CONNECTED")
            reply += chunk
    except BaseException:
        sock.close()
        raise
    head = reply.split(b"\x00")[0].lstrip(b"\r\n").decode("utf-8", "replace").split("\n\n")[0]
    command, *lines = head.split("\n")
    headers = dict(line.split(":", 1) for line in lines if ":" in line)
    if command.strip() != "CONNECTED":
        sock.close()
        raise OSError("expected CONNECTED, got %s %s" % (command, headers.get("message", "")))
    return sock, headers.get("server", "")


class StompdNodesSetup:
    """A private redis-server and ``count`` stompd nodes on it, all accepting on one socket.

    Compare.py makes one listening socket for STOMP (127.0.0.1:``port``)
    and one for WebSocket (``ws_port``) and hands both to every node, as
    systemd's ``stompd.socket`` would hand them to one: every node takes
    connections from the same sockets, so the nodes act as one broker on
    one address, each in its own process (its own core). The measured
    broker is ``name``, ``stompd-redis-xN``.
    """

    def __init__(self, count, port, ws_port, redis_port, twistd, redis_server="redis-server",
                 cpus=None):
        self.count = count
        self.port = port
        self.ws_port = ws_port
        self.twistd = twistd
        self.cpus = cpus
        self.redis = RedisProcess(redis_port, redis_server, cpus=cpus)
        self.sockets = []
        self.nodes = []

    @property
    def name(self):
        """The broker's column name."""
        return "stompd-redis-x%d" % self.count

    def start(self):
        """Start Redis, make the sockets, start every node and check that each takes connections.

        Raise RuntimeError (with everything stopped) on failure.
        """
        try:
            # The sockets first: a port in use fails before anything is started.
            self.sockets = [listening_socket(self.port, "pick --stompd-nodes-port"),
                            listening_socket(self.ws_port, "a spare port was taken meanwhile: "
                                                           "run again")]
            self.redis.start()
            for n in range(1, self.count + 1):
                node_id = "bench-x%d" % n
                config = REDIS_NODES_CONFIG % {"node": node_id, "url": self.redis.url}
                self.nodes.append(ActivatedStompdProcess(
                    self.sockets, self.twistd, config, "%s-%d" % (self.name, n), cpus=self.cpus))
            # All at once: each node's start-up (imports, Redis, lease) overlaps the others'.
            for node in self.nodes:
                node.spawn()
            for node in self.nodes:
                node.wait_ready()
            if not wait_for_websocket("127.0.0.1", self.ws_port, "/ws", self.nodes[0].proc, 5.0):
                raise RuntimeError("no WebSocket handshake on the shared ws://127.0.0.1:%d/ws"
                                   % self.ws_port)
            self.probe()
        except RuntimeError:
            self.stop(failed=True)
            raise

    def probe(self, per_node=8):
        """Hold ``per_node`` x count connections open at once; log which node each landed on.

        Every node answers with its node id as CONNECTED's server header.
        Raise RuntimeError if a connection fails; only log when one node
        got none (the kernel, not compare.py, chooses, so that is no error).
        """
        landed = {"bench-x%d" % n: 0 for n in range(1, self.count + 1)}
        held = []
        try:
            for _ in range(per_node * self.count):
                try:
                    sock, server = stomp_server_header(self.port)
                except OSError as exc:
                    raise RuntimeError("probe connection to the shared 127.0.0.1:%d failed: %s"
                                       % (self.port, exc)) from None
                held.append(sock)
                node = server.partition("/")[0]
                landed[node] = landed.get(node, 0) + 1
        finally:
            for sock in held:
                sock.close()
        log("%s: %d connections to 127.0.0.1:%d landed on %s"
            % (self.name, len(held), self.port,
               ", ".join("%s %d" % item for item in sorted(landed.items()))))
        idle = [node for node, count in landed.items() if not count]
        if idle:
            log("%s: warning: no probe connection landed on %s" % (self.name, ", ".join(idle)))

    def mark(self):
        """Each node's count of connections so far, for ``connections_since``."""
        return [node.connections_logged() for node in self.nodes]

    def connections_since(self, mark):
        """The STOMP connections each node accepted since ``mark``, by node id."""
        return {"bench-x%d" % n: node.connections_logged() - before
                for n, (node, before) in enumerate(zip(self.nodes, mark), 1)}

    def stop(self, failed=False):
        """Stop the nodes (SIGTERM to each pid, then wait for each), close the sockets, stop Redis."""
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                log("stopping %s (SIGTERM to pid %d)" % (node.name, node.proc.pid))
                os.kill(node.proc.pid, signal.SIGTERM)
        for node in self.nodes:
            if node.notify is not None:
                node.notify.close()
                node.notify = None
            if node.proc is not None:
                try:
                    node.proc.wait(15)
                except subprocess.TimeoutExpired:
                    pass  # node.stop sends SIGTERM again, then SIGKILL
            node.stop(keep_log=failed)
        for sock in self.sockets:
            sock.close()
        self.sockets = []
        self.redis.stop(keep_files=failed)


# -- running and tabulating ------------------------------------------------

# A run starts once the machine is this quiet (cores busy, over QUIET_WINDOW
# seconds), so that it does not share the CPUs with what the previous run
# left behind: a JVM collecting after its large-message run, say, or an
# Erlang VM's schedulers spinning down.
QUIET_CORES = 0.15
QUIET_WINDOW = 0.25


def busy_cpu_seconds():
    """CPU seconds the machine has spent busy (not idle or waiting for I/O), or None off Linux."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(field) for field in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def wait_until_quiet(limit):
    """Wait, at most ``limit`` seconds, until the machine is quiet; return the seconds waited
    and whether it became quiet."""
    if limit <= 0 or busy_cpu_seconds() is None:
        return 0.0, True
    started = time.monotonic()
    while True:
        before = busy_cpu_seconds()
        time.sleep(QUIET_WINDOW)
        busy = (busy_cpu_seconds() - before) / QUIET_WINDOW
        waited = time.monotonic() - started
        if busy < QUIET_CORES:
            return waited, True
        if waited >= limit:
            return waited, False


def run_one(broker, scenario, passthrough, timeout, connections=0):
    """Run one scenario against one broker in a fresh load generator; return its result dict.

    The ``connections`` scenario is a fresh connections.py opening ``connections`` of them;
    every other one a fresh stomp_load.py, given ``passthrough``.
    """
    if scenario == "connections":
        cmd = [sys.executable, CONNECTIONS, "--host", broker.host, "--port", str(broker.port),
               "--login", broker.login, "--passcode", broker.passcode, "--vhost", broker.vhost,
               "--count", str(connections), "--json"]
        for pid in broker.pids:
            cmd += ["--pid", str(pid)]
        return run_load(cmd, broker, scenario, "%s:%d" % (broker.host, broker.port), timeout)
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
    return run_load(cmd, broker, scenario, where, timeout)


def run_load(cmd, broker, scenario, where, timeout):
    """Run the load generator ``cmd`` (it prints its result as a JSON line); return the result."""
    log("running %s against %s (%s)" % (scenario, broker.name, where))
    started = time.monotonic()
    tool = os.path.basename(cmd[1])
    try:
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"scenario": scenario, "ok": False,
                "error": "%s did not finish within %ss" % (tool, timeout)}
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if not results:
        return {"scenario": scenario, "ok": False,
                "error": "no result (exit %d): %s" % (done.returncode, done.stderr.strip()[-2000:])}
    result = results[-1]
    if not result.get("ok"):
        # Show the load generator's own loud report for failed runs.
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
    ("connections", "connections held", "opened", "{:,.0f}"),
    ("connections", "connections/s", "connections_per_s", "{:,.0f}"),
    ("connections", "broker RSS bytes per connection", "rss_bytes_per_connection", "{:,.0f}"),
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
        if any(_get(results.get((b.name, scenario)) or {}, "connections_per_node")
               for b in brokers):
            # Brokers of several nodes on one socket: connections each node took.
            rows.append([scenario, "connections per node"] +
                        ["/".join(str(n) for n in per_node.values())
                         if (per_node := _get(results.get((b.name, scenario)) or {},
                                              "connections_per_node")) else "-"
                         for b in brokers])
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
    parser.add_argument("--start-stompd-nodes", type=int, default=0, metavar="N",
                        help="start another private redis-server and N stompd nodes on it, all "
                             "accepting on one STOMP and one WebSocket socket that compare.py "
                             "makes and hands to each (socket activation), as broker "
                             "'stompd-redis-xN'")
    parser.add_argument("--stompd-nodes-port", type=int, default=61663,
                        help="the STOMP port the nodes of --start-stompd-nodes share (default "
                             "61663; their shared WebSocket port is any free one)")
    parser.add_argument("--redis-port", type=int, default=0,
                        help="port of the started redis-server (default 0: any free port)")
    parser.add_argument("--redis-server", default="redis-server",
                        help="the redis-server to start (default: redis-server on PATH)")
    parser.add_argument("--taskset", default=None, metavar="CPUS",
                        help="run the stompd and redis-server processes compare.py starts under "
                             "taskset -c CPUS (e.g. 1); brokers started elsewhere are not touched")
    parser.add_argument("--twistd", default=os.path.join(os.path.dirname(sys.executable), "twistd"),
                        help="twistd to start stompd with (default: next to this Python)")
    parser.add_argument("--settle", type=float, default=10.0, metavar="SECONDS",
                        help="before each run, wait at most this long for the machine to be "
                             "quiet (under %g of a core busy; default 10, 0: do not wait)"
                             % QUIET_CORES)
    parser.add_argument("--run-timeout", type=float, default=300.0,
                        help="seconds one stomp_load.py run may take before it is killed")
    parser.add_argument("--connections", type=int, default=10000, metavar="COUNT",
                        help="idle connections the connections scenario opens (default 10000)")
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
    if args.start_stompd_nodes < 0:
        parser.error("--start-stompd-nodes: give a number of nodes, 1 or more")
    if args.start_stompd_nodes:
        nodes_setup = StompdNodesSetup(args.start_stompd_nodes, args.stompd_nodes_port, spare_port(),
                                       spare_port(), args.twistd, args.redis_server,
                                       cpus=args.taskset)
        if any(b.name == nodes_setup.name for b in brokers):
            parser.error("--start-stompd-nodes adds a broker named %s; do not pass one too"
                         % nodes_setup.name)
        ports = [args.stompd_nodes_port]
        if args.start_stompd_redis:
            ports += [args.stompd_redis_port, args.stompd_redis_peer_port]
        if args.start_stompd:
            ports.append(args.stompd_port)
        if len(set(ports)) != len(ports):
            parser.error("--stompd-nodes-port must differ from --stompd-port, --stompd-redis-port "
                         "and --stompd-redis-peer-port")
        brokers.insert(0, Broker(nodes_setup.name, "127.0.0.1", args.stompd_nodes_port,
                                 args.login, args.passcode, args.vhost,
                                 ws_port=nodes_setup.ws_port, ws_path="/ws"))
    else:
        nodes_setup = None
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
                     "--start-stompd-redis, --start-stompd-nodes N)")
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
            if nodes_setup:
                nodes_setup.start()
        except RuntimeError as exc:
            log("error: %s" % exc)
            return 2
        # The processes of the brokers started here, for connections' RSS.
        by_name = {b.name: b for b in brokers}
        if stompd:
            by_name["stompd"].pids = [stompd.pid]
        if redis_setup:
            by_name["stompd-redis"].pids = [redis_setup.node_a.pid]
        if nodes_setup:
            by_name[nodes_setup.name].pids = [node.pid for node in nodes_setup.nodes]
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
                nodes_run = nodes_setup is not None and broker.name == nodes_setup.name
                mark = nodes_setup.mark() if nodes_run else None
                waited, quiet = wait_until_quiet(args.settle)
                if not quiet:
                    log("the machine was still busy after %.0fs; running %s on %s anyway"
                        % (waited, scenario, broker.name))
                results[(broker.name, scenario)] = run_one(
                    broker, scenario, passthrough, args.run_timeout, args.connections)
                results[(broker.name, scenario)]["settled_s"] = round(waited, 2)
                if nodes_run:
                    # Which node the load generator's connections landed on.
                    results[(broker.name, scenario)]["connections_per_node"] = \
                        nodes_setup.connections_since(mark)
                    for node in nodes_setup.nodes:
                        check_alive(node, scenario)
                if stompd and broker.name == "stompd":
                    check_alive(stompd, scenario)
                if redis_setup and broker.name == "stompd-redis":
                    for node in (redis_setup.node_a, redis_setup.node_b):
                        check_alive(node, scenario)
            if redis_setup and scenario in PEER_SCENARIOS:
                redis_setup.stop_peer(failed=not all_ok())
    finally:
        if nodes_setup:
            nodes_setup.stop(failed=not all_ok())
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
