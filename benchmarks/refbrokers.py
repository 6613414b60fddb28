#!/usr/bin/env python3
"""Start and stop reference STOMP brokers on loopback for side-by-side benchmarks.

Three brokers are supported, each a private process of this script (no
systemd/service commands), with its own ports, data and logs under a
temporary directory, touching neither a system-wide instance nor its files:

``rabbitmq``
    RabbitMQ with its STOMP and Web-STOMP plugins, its own node name, data,
    log and cookie directory, and its own ``epmd`` on a spare port.
``activemq``
    Apache ActiveMQ 5 (Debian's ``activemq``) as one JVM running
    ``activemq.jar start`` on a generated ``activemq.xml``: KahaDB
    persistence in the instance directory, a STOMP transport on
    127.0.0.1 and no other listener (no OpenWire, no web console, no JMX),
    user guest/guest through the simple authentication plugin.
``stompserver``
    Debian's ``stompserver`` 0.9.9, a STOMP 1.0 broker in Ruby on
    EventMachine, run by a generated launcher (``launch.rb``) instead of
    ``/usr/bin/stompserver``, which Ruby 3 stops at the first connection: memory
    queues, a generated config whose working, storage, log and etc
    directories are in the instance directory, STOMP on 127.0.0.1 only, no
    authentication (any login is accepted).

Usage::

    python benchmarks/refbrokers.py start rabbitmq [--stomp-port 61623]
        [--web-stomp-port 15684] [--state-dir DIR] [--timeout 120]
    python benchmarks/refbrokers.py start activemq [--stomp-port 61633]
        [--state-dir DIR] [--timeout 120]
    python benchmarks/refbrokers.py start stompserver [--stomp-port 61643]
        [--state-dir DIR] [--timeout 120]
    python benchmarks/refbrokers.py status rabbitmq|activemq|stompserver
    python benchmarks/refbrokers.py stop rabbitmq|activemq|stompserver [--keep-files]

``start`` installs the Debian package when it is missing, starts the broker
in the background, waits until the STOMP port answers a CONNECT with
CONNECTED, records what it started in ``<state-dir>/<broker>.json`` and
prints the broker's process id.  ``stop`` stops the recorded processes by id
(for RabbitMQ after asking the node through ``rabbitmqctl``) and removes the
temporary directory.
"""

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time

DEFAULT_STATE_DIR = os.path.join(tempfile.gettempdir(), "stompd-refbrokers")

# Debian's /usr/sbin/rabbitmq-server is a wrapper that re-executes itself as
# the "rabbitmq" user through su, which would hide the real process id from
# us; the script it ends up running lives here.
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
RABBITMQ_CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"

RABBITMQ_PLUGINS = ("rabbitmq_stomp", "rabbitmq_web_stomp")

# Debian's activemq package: the launcher jar finds the broker's jars in
# ACTIVEMQ_HOME/lib and lib/optional.
ACTIVEMQ_HOME = "/usr/share/activemq"
ACTIVEMQ_JAR = os.path.join(ACTIVEMQ_HOME, "bin", "activemq.jar")

# Debian's stompserver package: the library its /usr/bin/stompserver loads,
# and the interpreter that script names on its #! line.
STOMPSERVER_LIB = "/usr/lib/ruby/vendor_ruby/stomp_server.rb"
STOMPSERVER_RUBY = "/usr/bin/ruby"

# Default STOMP ports, chosen away from each broker's usual 61613 so that a
# stompd on 61613 and all the references can run side by side.
DEFAULT_STOMP_PORTS = {"rabbitmq": 61623, "activemq": 61633, "stompserver": 61643}
BROKERS = tuple(DEFAULT_STOMP_PORTS)


class RefBrokerError(Exception):
    """A reference broker could not be installed, started or stopped."""


def log(message):
    """Print a progress line on stderr, keeping stdout for the results."""
    print(message, file=sys.stderr, flush=True)


# -- helpers ---------------------------------------------------------------


def port_is_free(port, host="127.0.0.1"):
    """Return True when nothing listens on ``host:port`` (TCP)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Like the brokers themselves: TIME_WAIT leftovers of an earlier run do
    # not make a port busy, a listener does.
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((host, port))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def spare_port(host="127.0.0.1", avoid=()):
    """Return a TCP port on ``host`` that is free right now.

    The kernel picks it from the ephemeral range; there is a small window in
    which another program could take it before the broker binds it, which is
    acceptable for a benchmark harness (start-up then fails loudly).
    """
    for _ in range(50):
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            probe.bind((host, 0))
            port = probe.getsockname()[1]
        finally:
            probe.close()
        if port not in avoid:
            return port
    raise RefBrokerError("could not find a spare loopback port")


def pid_alive(pid):
    """Return True if a process with this id exists and is not a zombie."""
    if not pid:
        return False
    try:
        with open("/proc/%d/stat" % pid, "rb") as stat:
            # The state letter follows the parenthesised command name.
            state = stat.read().rsplit(b")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in (b"Z", b"X")


def wait_pid_gone(pid, timeout):
    """Wait up to ``timeout`` seconds for ``pid`` to exit; return True if it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    return not pid_alive(pid)


def stop_pid(pid, name, term_timeout=15.0):
    """Stop one process by id: SIGTERM, then SIGKILL if it lingers."""
    if not pid_alive(pid):
        return
    log("sending SIGTERM to %s (pid %d)" % (name, pid))
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if wait_pid_gone(pid, term_timeout):
        return
    log("%s (pid %d) ignored SIGTERM; sending SIGKILL" % (name, pid))
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    if not wait_pid_gone(pid, 5.0):
        raise RefBrokerError("%s (pid %d) survived SIGKILL" % (name, pid))


def processes_mentioning(marker):
    """Return the ids of processes whose command line contains ``marker``.

    Used only with markers unique to one private node (its temporary
    directory), to find Erlang helper processes that outlived the node.
    """
    found = []
    own = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == own:
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as cmdline:
                if marker.encode() in cmdline.read() and pid_alive(int(entry)):
                    found.append(int(entry))
        except OSError:
            continue
    return found


def stomp_connect_ok(host, port, login, passcode, vhost, timeout=2.0):
    """Return True when ``host:port`` answers a STOMP CONNECT with CONNECTED."""
    frame = (
        "CONNECT\naccept-version:1.0,1.1,1.2\nhost:%s\nlogin:%s\npasscode:%s\n"
        "heart-beat:0,0\n\n\x00" % (vhost, login, passcode)
    ).encode()
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(frame)
            reply = b""
            while b"\x00" not in reply:
                chunk = sock.recv(4096)
                if not chunk:
                    return False
                reply += chunk
            ok = reply.lstrip(b"\r\n").startswith(b"CONNECTED")
            if ok:
                sock.sendall(b"DISCONNECT\n\n\x00")
            return ok
    except OSError:
        return False


def load_state(state_dir, broker):
    """Return the recorded state of ``broker`` or None."""
    path = os.path.join(state_dir, broker + ".json")
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None


def save_state(state_dir, broker, state):
    """Record what was started so that ``stop`` can find it again."""
    path = os.path.join(state_dir, broker + ".json")
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(state, handle, indent=2, sort_keys=True)
    os.replace(tmp, path)


def remove_state(state_dir, broker):
    """Forget ``broker``'s recorded state."""
    try:
        os.unlink(os.path.join(state_dir, broker + ".json"))
    except FileNotFoundError:
        pass


def tail(path, lines=40):
    """Return the last ``lines`` lines of a text file, for error reports."""
    try:
        with open(path, errors="replace") as handle:
            return "".join(handle.readlines()[-lines:])
    except OSError:
        return "(no %s)" % path


# -- RabbitMQ --------------------------------------------------------------


def apt_install(package):
    """Install one Debian package with apt-get, without starting its service.

    Tries ``apt-get install`` first and runs ``apt-get update`` only when
    that fails (a fresh machine may have no package lists yet).  Package
    maintainer scripts may try to start the system service; Debian's
    ``policy-rc.d`` convention (exit status 101) forbids that, so one is put
    in place for the duration of the install when the machine has none.  The
    system-wide instance is therefore never started, let alone touched.
    """
    if os.geteuid() != 0:
        raise RefBrokerError("%s is not installed and installing it needs root" % package)
    policy = "/usr/sbin/policy-rc.d"
    made_policy = False
    if not os.path.exists(policy):
        with open(policy, "w") as handle:
            handle.write("#!/bin/sh\n# temporary: do not start services\nexit 101\n")
        os.chmod(policy, 0o755)
        made_policy = True
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-q", package]
    try:
        log("installing %s (apt-get install)" % package)
        if subprocess.run(install, env=env, stdin=subprocess.DEVNULL,
                          stdout=sys.stderr).returncode != 0:
            log("apt-get install failed; apt-get update, then once more")
            subprocess.run(["apt-get", "update", "-q"], env=env, check=True,
                           stdin=subprocess.DEVNULL, stdout=sys.stderr)
            subprocess.run(install, env=env, check=True,
                           stdin=subprocess.DEVNULL, stdout=sys.stderr)
    except subprocess.CalledProcessError as exc:
        raise RefBrokerError("installing %s failed: %s" % (package, exc))
    finally:
        if made_policy:
            os.unlink(policy)


def ensure_rabbitmq_installed():
    """Install Debian's rabbitmq-server package if it is not there yet."""
    if os.access(RABBITMQ_SERVER, os.X_OK) and shutil.which("epmd"):
        return
    apt_install("rabbitmq-server")
    if not os.access(RABBITMQ_SERVER, os.X_OK):
        raise RefBrokerError("%s missing after install" % RABBITMQ_SERVER)


def rabbitmq_env(state):
    """Return the environment that points RabbitMQ tools at the private node.

    Every RABBITMQ_* path is set explicitly so that nothing is read from or
    written to /etc/rabbitmq or /var/lib/rabbitmq; HOME holds a private
    Erlang cookie; ERL_EPMD_PORT points at the private epmd.
    """
    base = state["dir"]
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("RABBITMQ_", "ERL_"))
    }
    env.update(
        HOME=os.path.join(base, "home"),
        ERL_EPMD_ADDRESS="127.0.0.1",
        ERL_EPMD_PORT=str(state["epmd_port"]),
        RABBITMQ_NODENAME=state["nodename"],
        RABBITMQ_USE_LONGNAME="false",
        RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
        RABBITMQ_NODE_PORT=str(state["amqp_port"]),
        RABBITMQ_DIST_PORT=str(state["dist_port"]),
        RABBITMQ_MNESIA_BASE=os.path.join(base, "mnesia"),
        RABBITMQ_LOG_BASE=os.path.join(base, "log"),
        RABBITMQ_CONFIG_FILE=os.path.join(base, "rabbitmq.conf"),
        RABBITMQ_ADVANCED_CONFIG_FILE=os.path.join(base, "advanced.config"),
        RABBITMQ_CONF_ENV_FILE=os.path.join(base, "rabbitmq-env.conf"),
        RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(base, "enabled_plugins"),
        RABBITMQ_PID_FILE=os.path.join(base, "rabbitmq.pid"),
        # Keep the Erlang distribution listener on loopback as well.
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
        RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
    )
    return env


def write_rabbitmq_files(state):
    """Create the private node's directories, config, plugin list and cookie."""
    base = state["dir"]
    for sub in ("home", "mnesia", "log"):
        os.makedirs(os.path.join(base, sub), exist_ok=True)
    with open(os.path.join(base, "rabbitmq.conf"), "w") as handle:
        handle.write(
            "# Generated by benchmarks/refbrokers.py for a private benchmark node.\n"
            "loopback_users = none\n"
            "listeners.tcp.default = 127.0.0.1:%(amqp_port)d\n"
            "stomp.listeners.tcp.1 = 127.0.0.1:%(stomp_port)d\n"
            "web_stomp.tcp.port = %(web_stomp_port)d\n"
            "web_stomp.tcp.ip = 127.0.0.1\n"
            "# The benchmark machine may be small; do not refuse publishers\n"
            "# because the disk is below RabbitMQ's default 50MB threshold.\n"
            "disk_free_limit.absolute = 1MB\n" % state
        )
    with open(os.path.join(base, "enabled_plugins"), "w") as handle:
        handle.write("[%s].\n" % ",".join(RABBITMQ_PLUGINS))
    # Empty on purpose: stops rabbitmq-env from sourcing
    # /etc/rabbitmq/rabbitmq-env.conf, which could move ports or paths.
    open(os.path.join(base, "rabbitmq-env.conf"), "w").close()
    cookie_path = os.path.join(base, "home", ".erlang.cookie")
    cookie = "".join(secrets.choice(string.ascii_uppercase) for _ in range(20))
    with open(cookie_path, "w") as handle:
        handle.write(cookie)
    os.chmod(cookie_path, 0o400)


def launch(command, env, cwd, log_path):
    """Start a broker process with its output appended to ``log_path``, in a
    session of its own: it survives this script and gets no terminal
    signals."""
    with open(log_path, "ab") as console:
        return subprocess.Popen(command, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=console, stderr=subprocess.STDOUT, start_new_session=True)


def wait_for_stomp(name, server, state, log_path, timeout, stop):
    """Wait until the broker started as ``server`` answers a STOMP CONNECT on
    its recorded port; if it exits or does not answer within ``timeout``
    seconds, call ``stop`` and raise RefBrokerError with its log's tail."""
    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None:
            message = "%s exited during start-up (status %s); console log:\n%s" % (
                name, server.returncode, tail(log_path))
            stop()
            raise RefBrokerError(message)
        if stomp_connect_ok(state.get("address", "127.0.0.1"), state["stomp_port"], "guest", "guest", "/"):
            return
        if time.monotonic() > deadline:
            message = "%s STOMP did not answer within %ss; console log:\n%s" % (
                name, timeout, tail(log_path))
            stop()
            raise RefBrokerError(message)
        time.sleep(0.5)


def refuse_a_second(args, broker, label, pid_keys=("pid",)):
    """Make the state directory; refuse to start ``broker`` while the one
    recorded there (any of the processes under ``pid_keys``) still runs."""
    os.makedirs(args.state_dir, exist_ok=True)
    old = load_state(args.state_dir, broker)
    if old and any(pid_alive(old.get(key)) for key in pid_keys):
        raise RefBrokerError(
            "a benchmark %s is already running (pid %s, state in %s); "
            "stop it first" % (label, old.get("pid"), args.state_dir)
        )


def start_rabbitmq(args):
    """Start a private RabbitMQ node with STOMP; return its recorded state."""
    refuse_a_second(args, "rabbitmq", "RabbitMQ", ("pid", "epmd_pid"))
    for port in (args.stomp_port, args.web_stomp_port):
        if not port_is_free(port):
            raise RefBrokerError("port 127.0.0.1:%d is already in use" % port)
    ensure_rabbitmq_installed()
    epmd = shutil.which("epmd")
    if not epmd:
        raise RefBrokerError("epmd not found (package erlang-base)")

    used = {args.stomp_port, args.web_stomp_port}
    state = {
        "broker": "rabbitmq",
        "dir": tempfile.mkdtemp(prefix="rabbitmq-", dir=args.state_dir),
        "nodename": "stompd-bench-%d@localhost" % os.getpid(),
        "stomp_port": args.stomp_port,
        "web_stomp_port": args.web_stomp_port,
    }
    for key in ("amqp_port", "dist_port", "epmd_port"):
        state[key] = spare_port(avoid=used)
        used.add(state[key])
    write_rabbitmq_files(state)
    env = rabbitmq_env(state)
    log_path = os.path.join(state["dir"], "log", "console.log")
    state["console_log"] = log_path

    # A private epmd on its own port, started by us so we know its pid and
    # can stop it; an epmd already on 4369 is left alone.
    epmd_proc = subprocess.Popen(
        [epmd, "-port", str(state["epmd_port"])],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    state["epmd_pid"] = epmd_proc.pid
    save_state(args.state_dir, "rabbitmq", state)

    server = launch([RABBITMQ_SERVER], env, state["dir"], log_path)
    state["pid"] = server.pid
    save_state(args.state_dir, "rabbitmq", state)
    log("started RabbitMQ node %s (pid %d), waiting for STOMP on 127.0.0.1:%d"
        % (state["nodename"], server.pid, state["stomp_port"]))

    wait_for_stomp("RabbitMQ", server, state, log_path, args.timeout,
                   lambda: stop_rabbitmq_state(args.state_dir, state, keep_files=True))
    try:
        with open(env["RABBITMQ_PID_FILE"]) as handle:
            state["beam_pid"] = int(handle.read().strip())
    except (OSError, ValueError):
        state["beam_pid"] = None
    save_state(args.state_dir, "rabbitmq", state)
    return state


def stop_rabbitmq_state(state_dir, state, keep_files=False):
    """Stop the node described by ``state`` and everything started with it.

    First the polite way (``rabbitmqctl stop`` on the same node name), then
    by process id: the server, the Erlang VM if its id differs, our epmd, and
    any Erlang helper still naming the node's private directory.
    """
    env = rabbitmq_env(state)
    pids = [p for p in (state.get("pid"), state.get("beam_pid")) if p]
    if any(pid_alive(pid) for pid in pids) and os.access(RABBITMQ_CTL, os.X_OK):
        log("rabbitmqctl -n %s stop" % state["nodename"])
        try:
            subprocess.run(
                [RABBITMQ_CTL, "-n", state["nodename"], "stop"],
                env=env, stdin=subprocess.DEVNULL, stdout=sys.stderr,
                stderr=sys.stderr, timeout=60,
            )
        except subprocess.TimeoutExpired:
            log("rabbitmqctl stop timed out; falling back to signals")
        for pid in pids:
            wait_pid_gone(pid, 30.0)
    for pid in pids:
        stop_pid(pid, "RabbitMQ")
    for pid in processes_mentioning(state["dir"]):
        stop_pid(pid, "RabbitMQ helper")
    stop_pid(state.get("epmd_pid"), "epmd")
    leftovers = [p for p in pids + [state.get("epmd_pid")] if pid_alive(p)]
    leftovers += processes_mentioning(state["dir"])
    if leftovers:
        raise RefBrokerError("processes still running: %s" % leftovers)
    if not keep_files:
        shutil.rmtree(state["dir"], ignore_errors=True)
    remove_state(state_dir, "rabbitmq")


# -- ActiveMQ --------------------------------------------------------------

ACTIVEMQ_XML = """\
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by benchmarks/refbrokers.py for a private benchmark broker. -->
<beans xmlns="http://www.springframework.org/schema/beans"
       xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
       xsi:schemaLocation="http://www.springframework.org/schema/beans
         http://www.springframework.org/schema/beans/spring-beans-2.0.xsd
         http://activemq.apache.org/schema/core
         http://activemq.apache.org/schema/core/activemq-core.xsd">
  <!-- useJmx=false: no JMX connector, so no RMI port on any interface. -->
  <broker xmlns="http://activemq.apache.org/schema/core"
          brokerName="stompd-bench" useJmx="false" persistent="true"
          dataDirectory="%(data)s">
    <persistenceAdapter>
      <kahaDB directory="%(data)s/kahadb"/>
    </persistenceAdapter>
    <!-- Explicit limits: the defaults (100 GB of store) exceed small disks,
         which makes the broker warn and shrink them at every start. -->
    <systemUsage>
      <systemUsage>
        <memoryUsage><memoryUsage percentOfJvmHeap="70"/></memoryUsage>
        <storeUsage><storeUsage limit="2 gb"/></storeUsage>
        <tempUsage><tempUsage limit="1 gb"/></tempUsage>
      </systemUsage>
    </systemUsage>
    <plugins>
      <simpleAuthenticationPlugin anonymousAccessAllowed="false">
        <users>
          <authenticationUser username="guest" password="guest" groups="users"/>
        </users>
      </simpleAuthenticationPlugin>
    </plugins>
    <!-- STOMP only, on loopback: no OpenWire (61616), and this package has
         no web console (8161) to start. -->
    <transportConnectors>
      <transportConnector name="stomp" uri="stomp://%(address)s:%(stomp_port)d"%(discovery)s/>
    </transportConnectors>
  </broker>
</beans>
"""

# Found on the broker's classpath (the conf directory); Debian's ActiveMQ
# logs through log4j 1.2.  Everything goes to the console log.
ACTIVEMQ_LOG4J = """\
# Generated by benchmarks/refbrokers.py.
log4j.rootLogger=INFO, console
log4j.logger.org.springframework=WARN
log4j.logger.org.apache.xbean=WARN
log4j.appender.console=org.apache.log4j.ConsoleAppender
log4j.appender.console.layout=org.apache.log4j.PatternLayout
log4j.appender.console.layout.ConversionPattern=%d | %-5p | %m | %c | %t%n
"""

# What Debian's /usr/bin/activemq passes to Java 9 and later (ActiveMQ 5.17
# needs Java 11), so that Spring and XBean may reflect into the JDK.
ACTIVEMQ_JAVA_MODULE_ARGS = (
    "--add-reads=java.xml=java.logging",
    "--add-opens", "java.base/java.security=ALL-UNNAMED",
    "--add-opens", "java.base/java.net=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang=ALL-UNNAMED",
    "--add-opens", "java.base/java.util=ALL-UNNAMED",
    "--add-opens", "java.naming/javax.naming.spi=ALL-UNNAMED",
    "--add-opens", "java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-opens", "java.base/java.util.concurrent.atomic=ALL-UNNAMED",
)


def find_java():
    """Return the java binary Debian's ActiveMQ would use, or None."""
    default = "/usr/lib/jvm/default-java/bin/java"
    if os.access(default, os.X_OK):
        return default
    return shutil.which("java")


def ensure_activemq_installed():
    """Install Debian's activemq package (and so a JRE) if it is not there yet.

    The package's init script would start ``/var/lib/activemq/main``; it is
    kept from doing so as for RabbitMQ, and that instance is never used.
    """
    if os.path.exists(ACTIVEMQ_JAR) and find_java():
        return
    apt_install("activemq")
    if not os.path.exists(ACTIVEMQ_JAR):
        raise RefBrokerError("%s missing after install" % ACTIVEMQ_JAR)
    if not find_java():
        raise RefBrokerError("no java found after installing activemq")


def write_activemq_files(state):
    """Create the private instance's conf, data and tmp directories and config."""
    base = state["dir"]
    for sub in ("conf", "data", "tmp"):
        os.makedirs(os.path.join(base, sub), exist_ok=True)
    with open(os.path.join(base, "conf", "activemq.xml"), "w") as handle:
        discovery = state.get("discovery_uri")
        handle.write(ACTIVEMQ_XML % {
            "data": os.path.join(base, "data"),
            "address": state.get("address", "127.0.0.1"),
            "stomp_port": state["stomp_port"],
            "discovery": ' discoveryUri="%s"' % discovery.replace("&", "&amp;") if discovery else "",
        })
    with open(os.path.join(base, "conf", "log4j.properties"), "w") as handle:
        handle.write(ACTIVEMQ_LOG4J)


def activemq_command(state, java):
    """The java command line that runs the instance in the foreground."""
    base = state["dir"]
    conf = os.path.join(base, "conf")
    return [
        java, "-Xms512M", "-Xmx512M", "-Djava.net.preferIPv4Stack=true",
        *ACTIVEMQ_JAVA_MODULE_ARGS,
        "-Djava.io.tmpdir=" + os.path.join(base, "tmp"),
        "-Djava.awt.headless=true",
        "-Dactivemq.classpath=" + conf,
        "-Dactivemq.home=" + ACTIVEMQ_HOME,
        "-Dactivemq.base=" + base,
        "-Dactivemq.conf=" + conf,
        "-Dactivemq.data=" + os.path.join(base, "data"),
        "-jar", ACTIVEMQ_JAR,
        "start", "xbean:file:" + os.path.join(conf, "activemq.xml"),
    ]


def start_activemq(args):
    """Start a private ActiveMQ broker with STOMP and KahaDB; return its recorded state."""
    refuse_a_second(args, "activemq", "ActiveMQ")
    if not port_is_free(args.stomp_port, args.address):
        raise RefBrokerError("port %s:%d is already in use" % (args.address, args.stomp_port))
    ensure_activemq_installed()
    java = find_java()
    state = {
        "broker": "activemq",
        "dir": tempfile.mkdtemp(prefix="activemq-", dir=args.state_dir),
        "address": args.address,
        "stomp_port": args.stomp_port,
        "discovery_uri": args.discovery_uri,
        "java": java,
    }
    write_activemq_files(state)
    log_path = os.path.join(state["dir"], "console.log")
    state["console_log"] = log_path
    # HOME too: nothing of this JVM should land in the caller's home.
    env = dict(os.environ, HOME=state["dir"])
    for key in ("ACTIVEMQ_OPTS", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS"):
        env.pop(key, None)
    server = launch(activemq_command(state, java), env, state["dir"], log_path)
    state["pid"] = server.pid
    save_state(args.state_dir, "activemq", state)
    log("started ActiveMQ (pid %d), waiting for STOMP on %s:%d"
        % (server.pid, state["address"], state["stomp_port"]))

    wait_for_stomp("ActiveMQ", server, state, log_path, args.timeout,
                   lambda: stop_activemq_state(args.state_dir, state, keep_files=True))
    return state


def stop_activemq_state(state_dir, state, keep_files=False):
    """Stop the broker described by ``state`` by process id.

    SIGTERM runs ActiveMQ's shutdown hook (the KahaDB journal is closed
    cleanly); SIGKILL follows if it has not exited after 30 s.
    """
    stop_instance(state_dir, state, "activemq", "ActiveMQ", keep_files, term_timeout=30.0)


def stop_instance(state_dir, state, broker, label, keep_files=False, term_timeout=15.0):
    """Stop the process recorded in ``state`` by its id, then anything else
    still running from its instance directory; remove the directory (unless
    ``keep_files``) and the state file."""
    stop_pid(state.get("pid"), label, term_timeout=term_timeout)
    for pid in processes_mentioning(state["dir"]):
        stop_pid(pid, "%s helper" % label)
    leftovers = [p for p in [state.get("pid")] if pid_alive(p)]
    leftovers += processes_mentioning(state["dir"])
    if leftovers:
        raise RefBrokerError("processes still running: %s" % leftovers)
    if not keep_files:
        shutil.rmtree(state["dir"], ignore_errors=True)
    remove_state(state_dir, broker)


# -- stompserver -----------------------------------------------------------

# What /usr/bin/stompserver does, minus its daemon and HTTP parts, with the
# changes today's Ruby needs (the library was written for Ruby 1.8):
# - That script hands the broker's managers to the protocol class by
#   assigning @@class variables inside an instance_eval block at top level;
#   since Ruby 3.0 that raises "class variable access from toplevel
#   (RuntimeError)" at the first connection, which ends the event loop and so
#   the broker.  Here they are set once with class_variable_set before the
#   listener starts.
# - QueueManager#send_a_backlog, which hands an ack:client subscriber its
#   next queued message after an ACK, indexes the result of Hash#select as an
#   array of pairs; since Ruby 1.9 that is a Hash, the lookup gives nil and the
#   first such ACK gets "undefined method `find' for nil" as an ERROR and a
#   closed connection.  The launcher redefines it with a to_a, nothing else.
STOMPSERVER_LAUNCHER = """\
# Generated by benchmarks/refbrokers.py: runs Debian's stompserver library
# for a private benchmark broker (usage: ruby launch.rb -C stompserver.conf).
require 'etc'
require 'optparse'
require 'yaml'

# Configurator and the file/dbm queues call File.exists?, which Ruby 3.2
# removed (3.1 only deprecates it); give it back where it is missing.
unless File.respond_to?(:exists?)
  class << File
    alias_method :exists?, :exist?
  end
end

require 'stomp_server'

class StompServer::QueueManager
  # /usr/lib/ruby/vendor_ruby/stomp_server/queue_manager.rb, plus .to_a.
  def send_a_backlog(connection)
    puts "Sending a backlog" if $DEBUG
    possible_queues = @queues.select{ |destination,users|
      @qstore.message_for?(destination) &&
        users.detect{|u| u.connection == connection}
    }.to_a
    if possible_queues.empty?
      puts "Nothing left" if $DEBUG
      return
    end
    dest,users = possible_queues[rand(possible_queues.length)]
    user = users.find{|u| u.connection == connection}
    frame = @qstore.dequeue(dest)
    puts "Chose #{dest}" if $DEBUG
    send_to_user(frame, user)
  end
end

# As in /usr/bin/stompserver: the QueueManager starts its /queue/monitor
# timer only inside the server.
$STOMP_SERVER = true

EventMachine.run do
  config = StompServer::Configurator.new
  stomp = StompServer::Run.new(config.opts)
  stomp.start
  protocol = StompServer::Protocols::Stomp
  protocol.class_variable_set(:@@auth_required, stomp.auth_required)
  protocol.class_variable_set(:@@queue_manager, stomp.queue_manager)
  protocol.class_variable_set(:@@topic_manager, stomp.topic_manager)
  protocol.class_variable_set(:@@stompauth, stomp.stompauth)
  puts "Stomp protocol handler starting on #{config.opts[:host]} port #{config.opts[:port]}"
  EventMachine.start_server(config.opts[:host], config.opts[:port], protocol)
end
"""

# The Configurator's YAML file, with symbol keys like Debian's
# /etc/stompserver/stompserver.conf (never read here).  No :daemon, :user or
# :group: the broker stays our child, in the foreground, as the caller.
# Values are JSON strings, which YAML reads as double-quoted scalars.
STOMPSERVER_CONF = """\
# Generated by benchmarks/refbrokers.py for a private benchmark broker.
---
:working_dir: %(dir)s
:storage: %(storage)s
:logdir: %(logdir)s
:etcdir: %(etcdir)s
:pidfile: %(pidfile)s
:queue: memory
:auth: false
:debug: false
:checkpoint: 0
:host: %(address)s
:port: %(stomp_port)d
"""


def ensure_stompserver_installed():
    """Install Debian's stompserver package (and so Ruby and EventMachine) if
    it is not there yet.

    Its init script would start a system-wide instance as the stompserver
    user; it is kept from doing so as for RabbitMQ, and that instance is never
    used.
    """
    if os.path.exists(STOMPSERVER_LIB) and os.access(STOMPSERVER_RUBY, os.X_OK):
        return
    apt_install("stompserver")
    if not os.path.exists(STOMPSERVER_LIB):
        raise RefBrokerError("%s missing after install" % STOMPSERVER_LIB)
    if not os.access(STOMPSERVER_RUBY, os.X_OK):
        raise RefBrokerError("%s missing after installing stompserver" % STOMPSERVER_RUBY)


def write_stompserver_files(state):
    """Create the private instance's directories, launcher and config."""
    base = state["dir"]
    paths = {sub: os.path.join(base, sub) for sub in ("storage", "log", "etc")}
    for path in paths.values():
        os.makedirs(path, exist_ok=True)
    with open(os.path.join(base, "launch.rb"), "w") as handle:
        handle.write(STOMPSERVER_LAUNCHER)
    with open(os.path.join(base, "stompserver.conf"), "w") as handle:
        handle.write(STOMPSERVER_CONF % {
            "dir": json.dumps(base),
            "storage": json.dumps(paths["storage"]),
            "logdir": json.dumps(paths["log"]),
            "etcdir": json.dumps(paths["etc"]),
            "pidfile": json.dumps(os.path.join(paths["log"], "stompserver.pid")),
            "address": json.dumps(state["address"]),
            "stomp_port": state["stomp_port"],
        })


def start_stompserver(args):
    """Start a private stompserver with memory queues; return its recorded state."""
    refuse_a_second(args, "stompserver", "stompserver")
    if not port_is_free(args.stomp_port):
        raise RefBrokerError("port 127.0.0.1:%d is already in use" % args.stomp_port)
    ensure_stompserver_installed()
    state = {
        "broker": "stompserver",
        "dir": tempfile.mkdtemp(prefix="stompserver-", dir=args.state_dir),
        "address": "127.0.0.1",
        "stomp_port": args.stomp_port,
    }
    write_stompserver_files(state)
    log_path = os.path.join(state["dir"], "console.log")
    state["console_log"] = log_path
    # HOME too, and none of the caller's Ruby settings: RUBYOPT or a gem
    # path could load other code into the broker.
    env = {key: value for key, value in os.environ.items()
           if key not in ("RUBYOPT", "RUBYLIB", "GEM_HOME", "GEM_PATH")}
    env["HOME"] = state["dir"]
    command = [STOMPSERVER_RUBY, os.path.join(state["dir"], "launch.rb"),
               "-C", os.path.join(state["dir"], "stompserver.conf")]
    server = launch(command, env, state["dir"], log_path)
    state["pid"] = server.pid
    save_state(args.state_dir, "stompserver", state)
    log("started stompserver (pid %d), waiting for STOMP on 127.0.0.1:%d"
        % (server.pid, state["stomp_port"]))

    wait_for_stomp("stompserver", server, state, log_path, args.timeout,
                   lambda: stop_stompserver_state(args.state_dir, state, keep_files=True))
    return state


def stop_stompserver_state(state_dir, state, keep_files=False):
    """Stop the broker described by ``state`` by process id.

    SIGTERM ends Ruby's event loop at once (stompserver traps only SIGINT);
    its memory queues have nothing to save.  SIGKILL follows if it lingers.
    """
    stop_instance(state_dir, state, "stompserver", "stompserver", keep_files)


# -- command line ----------------------------------------------------------


START = {"rabbitmq": start_rabbitmq, "activemq": start_activemq,
         "stompserver": start_stompserver}
STOP = {"rabbitmq": stop_rabbitmq_state, "activemq": stop_activemq_state,
        "stompserver": stop_stompserver_state}


def main(argv=None):
    """Entry point: ``start``, ``status`` or ``stop`` a reference broker."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument("broker", choices=BROKERS)
    parser.add_argument("--stomp-port", type=int, default=None,
                        help="STOMP port on 127.0.0.1 (default: rabbitmq %(rabbitmq)d, "
                             "activemq %(activemq)d, stompserver %(stompserver)d)"
                             % DEFAULT_STOMP_PORTS)
    parser.add_argument("--web-stomp-port", type=int, default=15684,
                        help="rabbitmq only: Web-STOMP port on 127.0.0.1 (default %(default)s)")
    parser.add_argument("--address", default="127.0.0.1",
                        help="activemq only: the address its STOMP connector listens on; anything "
                             "but loopback only inside a network namespace of one's own "
                             "(default %(default)s)")
    parser.add_argument("--discovery-uri", default=None,
                        help="activemq only: advertise the STOMP connector through this "
                             "discovery URI (e.g. multicast://default)")
    parser.add_argument("--state-dir", default=DEFAULT_STATE_DIR,
                        help="where state and node directories live (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds to wait for STOMP to come up (default %(default)s)")
    parser.add_argument("--keep-files", action="store_true",
                        help="on stop, keep the broker's data and log directory")
    args = parser.parse_args(argv)
    if args.stomp_port is None:
        args.stomp_port = DEFAULT_STOMP_PORTS[args.broker]

    try:
        if args.action == "start":
            state = START[args.broker](args)
            print("pid=%d" % state["pid"])
            if "nodename" in state:
                print("node=%s" % state["nodename"])
            print("stomp=127.0.0.1:%d" % state["stomp_port"])
            if "web_stomp_port" in state:
                print("web_stomp=127.0.0.1:%d" % state["web_stomp_port"])
            print("dir=%s" % state["dir"])
        elif args.action == "status":
            state = load_state(args.state_dir, args.broker)
            if not state:
                print("not running")
                return 1
            alive = pid_alive(state.get("pid"))
            print("pid=%s %s" % (state.get("pid"), "running" if alive else "dead"))
            print("stomp=127.0.0.1:%d" % state["stomp_port"])
            return 0 if alive else 1
        else:
            state = load_state(args.state_dir, args.broker)
            if not state:
                log("no recorded %s under %s; nothing to stop" % (args.broker, args.state_dir))
                return 0
            STOP[args.broker](args.state_dir, state, keep_files=args.keep_files)
            print("stopped pid=%s" % state.get("pid"))
    except RefBrokerError as exc:
        log("error: %s" % exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
