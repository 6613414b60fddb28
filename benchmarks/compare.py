#!/usr/bin/env python3
"""Run the stomp_load scenarios against several brokers and print them side by side.

Usage::

    python benchmarks/compare.py --broker stompd=127.0.0.1:61613,ws=15674 \\
        --broker rabbitmq=127.0.0.1:61623,ws=15684 --broker activemq=127.0.0.1:61633 \\
        [--scenario all|fanout|wsfanout|queue|queue-persistent|queue-visibility|
                    queue-priority|queue-header|latency]
    python benchmarks/compare.py --start-stompd --broker rabbitmq=127.0.0.1:61623,ws=15684 \\
        --broker activemq=127.0.0.1:61633 --scenario queue-persistent

A broker is ``NAME=HOST:PORT``, then optionally ``,ws=PORT`` (its STOMP over
WebSocket port, on the same host) and ``,ws-path=/PATH`` (default ``/ws``),
then optionally ``?login=..&passcode=..&vhost=..`` to override the global
``--login``/``--passcode``/``--vhost`` for that broker.  ``wsfanout`` runs
only on brokers with a ``ws`` port, and ``all`` includes it when at least
one has one.  Options that compare.py does not know (``--messages 10000``,
``--duration-limit 30``, ``--ws-producer`` ...) are passed to every
stomp_load.py run.

Scenarios run one broker at a time, scenario by scenario (fanout on every
broker, then queue on every broker ...), each in a fresh stomp_load.py
process, so brokers never compete with each other for the machine.

``--start-stompd`` starts ``<venv>/bin/twistd -n --pidfile= stompd --listen
tcp:PORT:interface=127.0.0.1 --listen-ws tcp:WSPORT:interface=127.0.0.1``
(the venv of the Python running this script; stompd must be installed in
it, e.g. by ``make install``), adds it as the first broker, and stops it
with SIGTERM by process id when done.
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
SCENARIOS = ("fanout", "wsfanout", "queue", "queue-persistent", "queue-visibility",
             "queue-priority", "queue-header", "latency")
# Scenarios that need the broker's WebSocket port.
WS_SCENARIOS = ("wsfanout",)

sys.path.insert(0, HERE)
import wsclient  # noqa: E402  (next to this script, not an installed package)


def log(message):
    """Progress on stderr; the table goes to stdout."""
    print(message, file=sys.stderr, flush=True)


class Broker:
    """One broker under test: a display name and how to reach it.

    ``ws_port`` is its STOMP-over-WebSocket port on the same host, or None
    when it has none (then it sits out the WebSocket scenarios).
    """

    def __init__(self, name, host, port, login, passcode, vhost, ws_port=None, ws_path="/ws"):
        self.name = name
        self.host = host
        self.port = port
        self.login = login
        self.passcode = passcode
        self.vhost = vhost
        self.ws_port = ws_port
        self.ws_path = ws_path

    @classmethod
    def parse(cls, spec, defaults):
        """Parse ``NAME=HOST:PORT[,ws=PORT][,ws-path=/PATH][?login=..&passcode=..&vhost=..]``."""
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
            if not sep or key not in ("ws", "ws-path"):
                raise ValueError("expected ,ws=PORT or ,ws-path=/PATH after HOST:PORT, got %r in %r"
                                 % (option, spec))
            transport[key] = value
        if "ws" in transport and not transport["ws"].isdigit():
            raise ValueError("ws=%r is not a port number in %r" % (transport["ws"], spec))
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
                   ws_path=transport.get("ws-path", "/ws"))


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


class StompdProcess:
    """A ``twistd -n stompd`` child listening on loopback (STOMP and WebSocket), stopped by its pid."""

    def __init__(self, port, ws_port, twistd, start_timeout=30.0):
        self.port = port
        self.ws_port = ws_port
        self.twistd = twistd
        self.start_timeout = start_timeout
        self.proc = None
        self.workdir = None
        self.log_path = None

    def start(self):
        """Start stompd and wait for its STOMP and WebSocket ports; raise RuntimeError on failure."""
        if port_in_use(self.port):
            raise RuntimeError("127.0.0.1:%d is already in use; pick --stompd-port" % self.port)
        if port_in_use(self.ws_port):
            raise RuntimeError("127.0.0.1:%d is already in use; pick --stompd-ws-port "
                               "(0 for any free port)" % self.ws_port)
        if not os.access(self.twistd, os.X_OK):
            raise RuntimeError("no twistd at %s (pass --twistd)" % self.twistd)
        # Its own working directory, so nothing twistd writes lands in the tree.
        self.workdir = tempfile.mkdtemp(prefix="stompd-bench-")
        self.log_path = os.path.join(self.workdir, "stompd.log")
        # Both listeners explicitly on loopback: stompd's default WebSocket
        # listener is tcp:15674 on every interface.
        cmd = [self.twistd, "-n", "--pidfile=", "stompd",
               "--listen", "tcp:%d:interface=127.0.0.1" % self.port,
               "--listen-ws", "tcp:%d:interface=127.0.0.1" % self.ws_port]
        log("starting: %s" % " ".join(cmd))
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=self.workdir, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT)
        if not (wait_for_stomp("127.0.0.1", self.port, self.proc, self.start_timeout)
                and wait_for_websocket("127.0.0.1", self.ws_port, "/ws", self.proc, 5.0)):
            self.stop(keep_log=True)
            raise RuntimeError("stompd did not come up on 127.0.0.1:%d and ws://127.0.0.1:%d/ws; "
                               "log:\n%s" % (self.port, self.ws_port, self.log_tail()))
        log("stompd running, pid %d, WebSocket on %d, log %s"
            % (self.proc.pid, self.ws_port, self.log_path))

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
            log("stopping stompd (SIGTERM to pid %d)" % self.proc.pid)
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                log("stompd ignored SIGTERM; SIGKILL to pid %d" % self.proc.pid)
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.workdir is None:
            return
        if keep_log or self.proc is None or self.proc.returncode != 0:
            log("stompd log kept: %s" % self.log_path)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


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


def main(argv=None):
    """Parse options, optionally start stompd, run everything, print the table."""
    parser = argparse.ArgumentParser(
        description="Run stomp_load.py scenarios against several brokers; print a table. "
                    "Unknown options are passed on to stomp_load.py.")
    parser.add_argument("--broker", action="append", default=[], metavar="NAME=HOST:PORT[,ws=PORT]",
                        help="a broker to measure (repeatable); ,ws=PORT gives its STOMP over "
                             "WebSocket port (and ,ws-path=/PATH its path, default /ws)")
    parser.add_argument("--scenario", default="all", choices=("all",) + SCENARIOS)
    parser.add_argument("--login", default="guest")
    parser.add_argument("--passcode", default="guest")
    parser.add_argument("--vhost", default="/")
    parser.add_argument("--start-stompd", action="store_true",
                        help="start stompd with twistd for the run and stop it afterwards")
    parser.add_argument("--stompd-port", type=int, default=61613)
    parser.add_argument("--stompd-ws-port", type=int, default=15674,
                        help="WebSocket port of the started stompd (default 15674; 0: any free port)")
    parser.add_argument("--twistd", default=os.path.join(os.path.dirname(sys.executable), "twistd"),
                        help="twistd to start stompd with (default: next to this Python)")
    parser.add_argument("--run-timeout", type=float, default=300.0,
                        help="seconds one stomp_load.py run may take before it is killed")
    parser.add_argument("--json", action="store_true",
                        help="also print all results as one JSON object")
    args, passthrough = parser.parse_known_args(argv)

    try:
        brokers = [Broker.parse(spec, args) for spec in args.broker]
    except ValueError as exc:
        parser.error(str(exc))
    if args.start_stompd:
        if any(b.name == "stompd" for b in brokers):
            parser.error("--start-stompd adds a broker named stompd; do not pass one too")
        if args.stompd_ws_port == 0:
            args.stompd_ws_port = spare_port()
        brokers.insert(0, Broker("stompd", "127.0.0.1", args.stompd_port,
                                 args.login, args.passcode, args.vhost,
                                 ws_port=args.stompd_ws_port, ws_path="/ws"))
    if not brokers:
        parser.error("give at least one --broker NAME=HOST:PORT (or --start-stompd)")
    names = [b.name for b in brokers]
    if len(set(names)) != len(names):
        parser.error("broker names must be unique")
    with_ws = [b.name for b in brokers if b.ws_port is not None]
    if args.scenario == "all":
        scenarios = [s for s in SCENARIOS if s not in WS_SCENARIOS or with_ws]
    else:
        scenarios = [args.scenario]
    if not with_ws and any(s in WS_SCENARIOS for s in scenarios):
        parser.error("%s needs a broker with a WebSocket port (NAME=HOST:PORT,ws=PORT)" % args.scenario)

    stompd = (StompdProcess(args.stompd_port, args.stompd_ws_port, args.twistd)
              if args.start_stompd else None)
    results = {}
    try:
        if stompd:
            try:
                stompd.start()
            except RuntimeError as exc:
                log("error: %s" % exc)
                return 2
        for scenario in scenarios:
            for broker in brokers:
                if scenario in WS_SCENARIOS and broker.ws_port is None:
                    log("skipping %s on %s: no ws=PORT given" % (scenario, broker.name))
                    continue
                results[(broker.name, scenario)] = run_one(
                    broker, scenario, passthrough, args.run_timeout)
                if stompd and broker.name == "stompd" and stompd.proc.poll() is not None:
                    log("stompd exited (status %s) during %s; log:\n%s"
                        % (stompd.proc.returncode, scenario, stompd.log_tail()))
    finally:
        if stompd:
            stompd.stop(keep_log=not all(r.get("ok") for r in results.values()))

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
