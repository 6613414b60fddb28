"""
C{twistd stompd}: command-line options and the service tree.

This is the only module that wires the pieces together and touches the
global reactor.
"""

import atexit
import dataclasses
import gc
import os
import signal
import sys

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.logger import Logger
from twisted.python import usage

from stompd import plugins
from stompd.broker.service import BrokerService
from stompd.config import Config, LoggingConfig, load_config
from stompd.errors import ConfigError
from stompd.heap import keep_freed_buffers
from stompd.interfaces import IAuthenticator, IConnector, IDiscoveryAgent, IMessageStore
from stompd.logs import CONFIGURED_OBSERVER, FORMATS, LEVELS, choose, set_level
from stompd.management.site import make_management_site
from stompd.systemd import SystemdNotifier
from stompd.transport.reactor import DirectReadReactor
from stompd.transport.tcp import StompFactory
from stompd.transport.tls import ask_for_client_certificates, load_ca_certificates
from stompd.transport.web import make_site


log = Logger()


class Options(usage.Options):
    """
    C{twistd stompd [--config PATH] [--listen ENDPOINT ...]}
    """

    synopsis = "[--config PATH] [--listen ENDPOINT ...]"
    optParameters = [
        ["config", "c", None, "TOML configuration file (see etc/stompd.toml)."],
    ]
    longdesc = (
        "Runs the stompd STOMP broker. Without options it listens on tcp:61613 "
        "with in-memory storage and accepts the user guest/guest."
    )

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self["listen-ws"] = []

    def opt_listen_ws(self, endpoint: str) -> None:
        """
        Listen for STOMP over WebSocket on a Twisted endpoint (tcp:15674,
        ssl:15673:privateKey=...); repeatable; replaces the configured list.
        """
        self["listen-ws"].append(endpoint)

    def opt_log_format(self, format: str) -> None:
        """
        Log as "text" (default) or "json" (one object per line); replaces
        [logging] format.
        """
        if format not in FORMATS:
            raise usage.UsageError(f"--log-format must be one of {', '.join(FORMATS)}, not {format!r}")
        self["log-format"] = format

    def opt_log_level(self, level: str) -> None:
        """
        The lowest level logged: debug, info (default), warn, error or
        critical; replaces [logging] level.
        """
        if level not in LEVELS:
            raise usage.UsageError(f"--log-level must be one of {', '.join(LEVELS)}, not {level!r}")
        self["log-level"] = level

    def opt_listen(self, endpoint: str) -> None:
        """
        Listen on a Twisted endpoint (tcp:61613, ssl:61614:privateKey=...,
        systemd:domain=INET:index=0); repeatable; replaces the configured list.
        """
        self["listen"].append(endpoint)

    opt_l = opt_listen

    def postOptions(self) -> None:
        try:
            config = load_config(self["config"]) if self["config"] else Config()
        except ConfigError as e:
            # One line: a UsageError would print the whole usage text first.
            raise SystemExit(f"stompd: {e}") from None
        logging = dataclasses.replace(
            config.logging,
            format=self.get("log-format") or config.logging.format,
            level=self.get("log-level") or config.logging.level,
        )
        config = dataclasses.replace(config, logging=logging)
        self["reload-level"] = not self.get("log-level")
        foreground = self.parent is not None and self.parent.get("nodaemon")
        if (logging != LoggingConfig() or foreground) and self.parent is not None and not self.parent.get("logger"):
            # twistd makes its logger from its own options, after these.
            choose(logging.format, logging.level, self.parent.get("logfile") or "")
            self.parent["logger"] = CONFIGURED_OBSERVER
        if self["listen"]:
            config = dataclasses.replace(config, listen=tuple(self["listen"]))
        if self["listen-ws"]:
            websocket = dataclasses.replace(config.websocket, listen=tuple(self["listen-ws"]))
            config = dataclasses.replace(config, websocket=websocket)
        self["stompd-config"] = config


class StartupError(Exception):
    """
    A service cannot start; the message is the one line to show.
    """


class _ListeningService(StreamServerEndpointService):
    """
    Listens on one endpoint, once the services before it have started (not
    in the privileged phase, which comes before the store is ready); a
    failure to bind stops start-up with a clear message rather than a
    traceback.
    """

    def privilegedStartService(self) -> None:
        Service.privilegedStartService(self)

    def startService(self) -> None:
        Service.startService(self)
        self._raiseSynchronously = True
        try:
            StreamServerEndpointService.privilegedStartService(self)
        except CannotListenError as e:
            raise StartupError(f"cannot listen on {self.description}: {e.socketError or e}") from None
        except (OSError, OverflowError) as e:
            # Not wrapped in CannotListenError: a port above 65535, a UNIX
            # socket in a missing directory.
            raise StartupError(f"cannot listen on {self.description}: {e}") from None

    def stopService(self):
        if self._waitingForPort is None:
            # Start-up ended before this listener's turn.
            Service.stopService(self)
            return None
        return super().stopService()


class OrderedStartService(MultiService):
    """
    Starts its children one after another, each once the Deferred of the
    one before has fired (a plain C{MultiService} ignores those Deferreds),
    so that the broker's store is ready before any listener accepts a
    client. A child that cannot start ends start-up: see L{fail_startup}.

    @ivar started: a Deferred firing once every child has started, or
        failing with what stopped one.
    """

    def __init__(self, reactor, on_failure=None) -> None:
        super().__init__()
        self._reactor = reactor
        self._on_failure = on_failure or fail_startup
        self.started: Deferred | None = None

    def startService(self) -> None:
        Service.startService(self)
        self.started = Deferred.fromCoroutine(self._start_children())
        if self.started.called:
            failures = []
            self.started.addErrback(failures.append)
            if failures:
                # Failed before the reactor runs (a memory store, a port in
                # use): twistd shows SystemExit's text as one line.
                raise SystemExit(f"stompd: {_startup_problem(failures[0])}")
        else:
            self.started.addErrback(lambda failure: self._on_failure(self._reactor, _startup_problem(failure)))

    async def _start_children(self) -> None:
        for child in list(self):
            await maybeDeferred(child.startService)


def _startup_problem(failure) -> str:
    if failure.check(StartupError, ConfigError):
        return str(failure.value)
    return f"start-up failed: {failure.getErrorMessage()}"


def fail_startup(reactor, problem: str) -> None:
    """
    End a start-up that failed once the reactor was running: print one line,
    stop the reactor, and make the process exit non-zero (twistd itself
    exits 0 whatever stopped its reactor).
    """
    print(f"stompd: {problem}", file=sys.stderr, flush=True)

    def exit_non_zero() -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)

    # atexit runs after twistd has removed its pid file.
    atexit.register(exit_non_zero)
    if reactor.running:
        reactor.stop()
    else:
        reactor.callWhenRunning(reactor.stop)


def _stop_cleanly_on_sigterm(reactor) -> None:
    """
    twistd ends a process stopped by SIGTERM by killing it with that signal
    again; a broker that shut down gracefully should exit 0 instead, which
    is what service managers and scripts expect.
    """

    def on_sigterm(number, frame):
        log.info("Received SIGTERM, shutting down.")
        reactor.callFromThread(reactor.stop)

    reactor.callWhenRunning(signal.signal, signal.SIGTERM, on_sigterm)


def _reload_on_sighup(reactor, broker, path: str | None, reload_level: bool) -> None:
    """
    SIGHUP reads the configuration file again and takes its users, tokens,
    authorization rules and log level; a bad file keeps the running ones
    and says why. Connections stay.
    """

    def reload() -> None:
        if not path:
            log.warn("SIGHUP: no configuration file to read again")
            return
        try:
            config = load_config(path)
            broker.reload(config)
        except ConfigError as e:
            log.error("SIGHUP: {problem}; the running configuration stays", problem=str(e))
            return
        # Said before a higher level would hide it.
        log.info("SIGHUP: reloaded users, tokens, authorization and log level from {path}", path=path)
        if reload_level:
            set_level(config.logging.level)

    def on_sighup(number, frame):
        reactor.callFromThread(reload)

    reactor.callWhenRunning(signal.signal, signal.SIGHUP, on_sighup)


def new_node_id() -> str:
    """
    A node id for a broker whose configuration names none: random, so that
    nodes sharing a store never collide.
    """
    return os.urandom(4).hex()


def make_broker(config: Config, reactor) -> BrokerService:
    """
    The broker service with the configured store, authenticator and
    connectors.

    @raise ConfigError: if a plugin is missing or broken.
    """
    plugins.check_tables(plugins.STORAGE, config.storage.settings, "storage")
    plugins.check_tables(plugins.AUTH, config.auth.settings, "auth")
    storage, auth = config.storage.backend, config.auth.backend
    store = plugins.create(
        plugins.STORAGE, storage, IMessageStore, config, reactor, config.storage.settings.get(storage), f"storage.{storage}"
    )
    authenticator = plugins.create(
        plugins.AUTH, auth, IAuthenticator, config, reactor, config.auth.settings.get(auth), f"auth.{auth}"
    )
    connectors = [_make_connector(connector, config, reactor) for connector in config.connectors]
    return BrokerService(config, store, authenticator, reactor, connectors)


def make_advertisers(config: Config, reactor) -> list:
    """
    The discovery agents through which this broker advertises itself.

    @raise ConfigError: naming C{discovery.advertise}.
    """
    agents = []
    for uri in config.discovery.advertise:
        scheme = uri.split(":", 1)[0]
        if scheme not in plugins.available(plugins.DISCOVERY):
            installed = ", ".join(plugins.available(plugins.DISCOVERY)) or "none"
            raise ConfigError(f"discovery.advertise: no discovery agent for {uri!r}; installed: {installed}")
        agent = plugins.create(plugins.DISCOVERY, scheme, IDiscoveryAgent, config, reactor, {"uri": uri}, "discovery.advertise")
        try:
            agent.advertise(config.discovery.advertise_uri, config.node_id)
        except ConfigError as e:
            raise ConfigError(f"discovery.advertise: {e}") from None
        agents.append(agent)
    return agents


class AdvertisingService(Service):
    """
    Advertises the broker once its listeners are open (the last child of
    the service tree), and withdraws the advertisement first on shutdown.
    """

    def __init__(self, agents) -> None:
        self.agents = agents

    def startService(self):
        Service.startService(self)
        return DeferredList([maybeDeferred(agent.start) for agent in self.agents], fireOnOneErrback=True, consumeErrors=True)

    def stopService(self):
        Service.stopService(self)
        return DeferredList([maybeDeferred(agent.stop) for agent in self.agents], consumeErrors=True)


def _make_connector(connector, config: Config, reactor):
    where = f"connectors.{connector.name}"
    if connector.type not in plugins.available(plugins.CONNECTORS):
        installed = ", ".join(plugins.available(plugins.CONNECTORS)) or "none"
        raise ConfigError(f"{where}.type: no connector type {connector.type!r}; installed: {installed}")
    table = {"name": connector.name, **connector.options}
    return plugins.create(plugins.CONNECTORS, connector.type, IConnector, config, reactor, table, where)


# Connections the kernel holds for a listener until the broker accepts
# them. Twisted's default of 50 is soon full when many clients connect at
# once (all of them again after a restart, a pool opening): the kernel then
# drops their SYNs, and each tries again only a second or more later. The
# kernel caps it at net.core.somaxconn; an endpoint's own backlog= wins.
LISTEN_BACKLOG = 4096
_BACKLOG_ENDPOINTS = ("tcp", "tcp6", "ssl", "unix")


def with_backlog(description: str) -> str:
    """
    The endpoint string C{description} with C{backlog=}L{LISTEN_BACKLOG}
    added, for an endpoint type that takes one and a string that does not
    give one.
    """
    kind = description.split(":", 1)[0]
    if kind not in _BACKLOG_ENDPOINTS or "backlog=" in description:
        return description
    return f"{description}:backlog={LISTEN_BACKLOG}"


def _listen(parent: MultiService, reactor, description: str, source: str, factory, client_certificates=None) -> None:
    try:
        endpoint = serverFromString(reactor, with_backlog(description))
        if client_certificates is not None:
            endpoint = ask_for_client_certificates(endpoint, *client_certificates)
    except Exception as e:
        # Parsing may read files (ssl: keys and certificates) or the
        # environment (systemd:), so it fails in many ways; each is a bad
        # endpoint string, not a bug to show a traceback for.
        raise SystemExit(f"stompd: {source}: invalid endpoint {description!r}: {e}") from None
    listening = _ListeningService(endpoint, factory)
    listening.description = description
    listening.setServiceParent(parent)


def makeService(options: Options, reactor=None) -> OrderedStartService:
    """
    Build the service tree: the broker first, then one listening service per
    endpoint (STOMP over TCP, then WebSocket). They start in that order, each
    listener once the broker (its store) is ready; on shutdown listeners stop
    before the broker.
    """
    if reactor is None:
        from twisted.internet import reactor

        # The global reactor, as twistd installed it: a read event reaches
        # its connection sooner.
        DirectReadReactor.adopt(reactor)
        # This process's: large bodies' buffers are reused, not faulted in
        # afresh for each body.
        keep_freed_buffers()
    config = options["stompd-config"]
    log.info("Configuration: {path}", path=options.get("config") or "none (built-in defaults)")
    if not config.node_id:
        config = dataclasses.replace(config, node_id=new_node_id())
    try:
        broker = make_broker(config, reactor)
        advertisers = make_advertisers(config, reactor)
    except ConfigError as e:
        where = f"{options['config']}: " if options.get("config") else ""
        raise SystemExit(f"stompd: {where}{e}") from None
    top = OrderedStartService(reactor)
    broker.setServiceParent(top)
    listeners = [("listen", "--listen", config.listen, StompFactory(broker))]
    for n, listener in enumerate(config.listener):
        listeners.append(
            (f"listener[{n}].endpoint", None, (listener.endpoint,), StompFactory(broker, listener.oci_compat))
        )
    if config.websocket.enabled:
        listeners.append(("websocket.listen", "--listen-ws", config.websocket.listen, make_site(broker, config.websocket)))
    if config.management.listen:
        listeners.append(("management.listen", None, config.management.listen, make_management_site(broker, config.management)))
    client_certificates = None
    if config.auth.tls_client_cert:
        try:
            client_certificates = (config.auth.tls_client_cert, load_ca_certificates(config.auth.tls_ca_certs))
        except ConfigError as e:
            where = f"{options['config']}: " if options.get("config") else ""
            raise SystemExit(f"stompd: {where}{e}") from None
    for key, option, descriptions, factory in listeners:
        # Name where a bad endpoint string came from: the command line or the file.
        from_command_line = option is not None and (options.get(option.lstrip("-")) or not options.get("config"))
        source = option if from_command_line else f"{options['config']}: {key}"
        for description in descriptions:
            _listen(top, reactor, description, source, factory, client_certificates)
    if advertisers:
        AdvertisingService(advertisers).setServiceParent(top)
    # Last: READY=1 once everything before it has started.
    SystemdNotifier(reactor, broker).setServiceParent(top)
    _stop_cleanly_on_sigterm(reactor)
    _reload_on_sighup(reactor, broker, options.get("config"), options.get("reload-level", True))
    reactor.callWhenRunning(collect_less)
    return top


# Allocations of container objects between collections of the youngest
# generation (CPython's default is 700).
GC_YOUNG_THRESHOLD = 50_000


def collect_less() -> None:
    """
    Tune CPython's cyclic garbage collector for a broker. Nearly everything
    it allocates per message is freed by reference counting, and what lives
    on (messages waiting in queues) has no cycles; yet with the default
    thresholds, collections took 7-8% of a busy broker's CPU, mostly in
    passes over the objects of start-up and the queued messages. With a
    store over the network, what a message makes lives for a round trip,
    and a young collection every 700 allocations passes over it again and
    again. Collecting the young generation far less often, and leaving out
    everything that exists once the broker runs (C{gc.freeze}), brings that
    to about 3%. Cycles are still collected.
    """
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, oldest)
    gc.freeze()
