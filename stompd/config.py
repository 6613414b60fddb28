"""
Configuration: a TOML file read into frozen dataclasses.

Keys are kebab-case in the file (C{max-frame-size}) and snake_case here. An
unknown key, a wrong type or a bad value raises L{ConfigError} naming the
file, the key and the problem. C{etc/stompd.toml} documents every key.
"""

import dataclasses
import functools
import re
import tomllib
from dataclasses import dataclass, field

from stompd.codec import Limits
from stompd.errors import ConfigError


_FRAME_LIMITS = {f.name: f.default for f in dataclasses.fields(Limits)}


@dataclass(frozen=True)
class LimitsConfig:
    """
    The C{[limits]} section: the codec's frame limits (see
    L{stompd.codec.Limits}), and how many connections the broker takes.

    @ivar max_connections: connections at once, all listeners together; 0
        for no limit.
    @ivar max_connections_per_address: connections at once from one peer
        address; 0 for no limit.
    @ivar connection_rate: new connections per second one address may
        open, averaged over a second; 0 for no limit.
    """

    max_frame_size: int = _FRAME_LIMITS["max_frame_size"]
    max_body_size: int = _FRAME_LIMITS["max_body_size"]
    max_headers: int = _FRAME_LIMITS["max_headers"]
    max_header_line: int = _FRAME_LIMITS["max_header_line"]
    max_buffered: int = _FRAME_LIMITS["max_buffered"]
    max_connections: int = 0
    max_connections_per_address: int = 0
    connection_rate: float = 0.0

    def __post_init__(self) -> None:
        self.frames  # checks the frame limits
        if self.max_connections < 0 or self.max_connections_per_address < 0 or self.connection_rate < 0:
            raise ValueError("max-connections, max-connections-per-address and connection-rate must not be negative")

    @functools.cached_property
    def frames(self) -> Limits:
        """
        The frame limits, for parsers.
        """
        return Limits(**{name: getattr(self, name) for name in _FRAME_LIMITS})


@dataclass(frozen=True)
class HeartBeatConfig:
    """
    Heart-beat negotiation, in milliseconds.

    @ivar send: the shortest interval at which the broker sends beats; a
        client asking for more often gets this.
    @ivar receive: the shortest interval at which the broker wants beats.
    @ivar grace: a TCP client silent for its negotiated interval times this
        is disconnected (WebSocket clients have their own, more tolerant
        L{WebSocketConfig.heart_beat_grace}).
    """

    send: int = 1000
    receive: int = 1000
    grace: float = 2.0

    def __post_init__(self) -> None:
        if self.send < 0 or self.receive < 0:
            raise ValueError("heart-beat intervals must not be negative")
        if self.grace < 1.0:
            raise ValueError("grace must be at least 1.0")


@dataclass(frozen=True)
class AuthConfig:
    """
    @ivar backend: the name of an C{stompd.auth} entry point.
    @ivar guest: accept the built-in user guest/guest.
    @ivar anonymous: accept a CONNECT without C{login}.
    @ivar users_file: a file of C{name:hash} lines (see L{stompd.auth}).
    @ivar guest_loopback_only: the user C{guest} may log in only from a
        loopback address (or a UNIX socket), as in RabbitMQ.
    @ivar tls_client_cert: C{""} (off), C{"optional"} or C{"required"}:
        C{ssl:} listeners ask for a client certificate chaining to
        C{tls_ca_certs}; a client that presents one is the user its common
        name says.
    @ivar tls_ca_certs: a PEM bundle of the CAs client certificates must
        chain to.
    @ivar settings: the plugins' own tables (C{[auth.NAME]}), each parsed
        by its plugin.
    """

    backend: str = "users"
    guest: bool = True
    anonymous: bool = False
    users_file: str = ""
    guest_loopback_only: bool = True
    tls_client_cert: str = ""
    tls_ca_certs: str = ""
    settings: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.tls_client_cert not in ("", "optional", "required"):
            raise ValueError(f"tls-client-cert must be 'optional' or 'required', not {self.tls_client_cert!r}")
        if self.tls_client_cert and not self.tls_ca_certs:
            raise ValueError("tls-ca-certs is required with tls-client-cert: the CAs client certificates chain to")


@dataclass(frozen=True)
class QueueConfig:
    """
    @ivar default_prefetch: unacknowledged messages a client-ack subscription
        holds at once when it names no C{prefetch-count}.
    @ivar high_water_mark: a SEND to a queue holding this many messages
        waits (and the publisher's connection stops being read) until the
        queue is down to half.
    @ivar auto_delete: a regular expression; a queue created by a SUBSCRIBE
        whose name matches is deleted when its last subscriber goes. The
        default matches the queues Spring's relay makes for
        C{/user/queue/...} destinations.
    @ivar max_transaction_frames: frames one transaction may hold.
    @ivar visibility_timeout: seconds a delivered, unacknowledged message
        stays invisible before it is delivered again; 0 for no timeout. A
        SUBSCRIBE's C{visibility} header overrides it.
    @ivar max_deliveries: deliveries after which a message that comes back
        is dead-lettered; 0 for no limit. SUBSCRIBE's C{max-deliveries}
        overrides it.
    @ivar dead_letter_queue: where a queue's dead letters go, with C{{name}}
        standing for the queue's destination; C{""} drops them.
    @ivar default_ttl: seconds a queue message lives when its SEND asks for
        no expiry; 0 for ever.
    @ivar expired: what happens to an expired message: C{"dead-letter"} or
        C{"drop"}.
    @ivar channel_queues: patterns of queue destinations (C{*} is any part
        of a segment) for which C{/queue/NAME/CHANNEL} means channel
        C{CHANNEL} of C{/queue/NAME}.
    @ivar max_depth: messages a queue may hold waiting (not counting those
        delivered and unacknowledged); 0 for no limit.
    @ivar overflow: what a SEND to a queue at C{max_depth} does:
        C{"reject"} (an ERROR to the producer; nothing is stored),
        C{"drop-oldest"} (the oldest waiting message is dropped) or
        C{"dead-letter"} (it goes to the queue's dead-letter queue with
        C{dead-letter-reason:max-depth}).
    """

    default_prefetch: int = 100
    high_water_mark: int = 100_000
    auto_delete: str = r"-user[^/.]+$"
    max_transaction_frames: int = 10_000
    visibility_timeout: float = 0.0
    max_deliveries: int = 0
    dead_letter_queue: str = "{name}.DLQ"
    default_ttl: float = 0.0
    expired: str = "dead-letter"
    channel_queues: tuple[str, ...] = ()
    max_depth: int = 0
    overflow: str = "reject"

    def __post_init__(self) -> None:
        if self.max_depth < 0:
            raise ValueError("max-depth must not be negative")
        if self.overflow not in ("reject", "drop-oldest", "dead-letter"):
            raise ValueError(f"overflow must be 'reject', 'drop-oldest' or 'dead-letter', not {self.overflow!r}")
        if self.visibility_timeout < 0 or self.default_ttl < 0 or self.max_deliveries < 0:
            raise ValueError("visibility-timeout, default-ttl and max-deliveries must not be negative")
        if self.expired not in ("dead-letter", "drop"):
            raise ValueError(f"expired must be 'dead-letter' or 'drop', not {self.expired!r}")
        if self.dead_letter_queue:
            try:
                example = self.dead_letter_queue.format(name="/queue/x")
            except (KeyError, IndexError, ValueError):
                raise ValueError(
                    f"dead-letter-queue may use only {{name}}, not {self.dead_letter_queue!r}"
                ) from None
            if not example.startswith("/queue/"):
                raise ValueError(
                    f"dead-letter-queue must name a /queue/ (as {{name}}.DLQ does), not {self.dead_letter_queue!r}"
                )
        for pattern in self.channel_queues:
            if not pattern.startswith("/queue/") or len(pattern) <= len("/queue/"):
                raise ValueError(f"channel-queues patterns must name queues like '/queue/jobs', not {pattern!r}")
        if self.default_prefetch < 1:
            raise ValueError("default-prefetch must be at least 1")
        if self.high_water_mark < 2:
            raise ValueError("high-water-mark must be at least 2")
        if self.max_transaction_frames < 1:
            raise ValueError("max-transaction-frames must be at least 1")
        try:
            re.compile(self.auto_delete)
        except re.error as e:
            raise ValueError(f"auto-delete is not a regular expression: {e}") from None


@dataclass(frozen=True)
class WebSocketConfig:
    """
    STOMP over WebSocket.

    @ivar enabled: listen for WebSocket clients at all.
    @ivar listen: Twisted endpoint strings (C{ssl:} for C{wss://}).
    @ivar paths: URL paths that accept WebSocket connections.
    @ivar allowed_origins: C{Origin} header patterns accepted (C{*} is any);
        browsers send it, and a page from another site cannot connect
        unless listed.
    @ivar page: serve the built-in test page at C{/}.
    @ivar heart_beat_grace: a WebSocket client silent for its negotiated
        heart-beat interval times this is disconnected. Generous: browsers
        run the timers of background tabs as rarely as once a minute.
    """

    enabled: bool = True
    listen: tuple[str, ...] = ("tcp:15674",)
    paths: tuple[str, ...] = ("/ws", "/stomp")
    allowed_origins: tuple[str, ...] = ("*",)
    page: bool = True
    heart_beat_grace: float = 7.0

    def __post_init__(self) -> None:
        if self.heart_beat_grace < 1.0:
            raise ValueError("heart-beat-grace must be at least 1.0")
        for path in self.paths:
            if not path.startswith("/") or path.count("/") != 1 or len(path) < 2:
                raise ValueError(f"paths must be single segments like '/ws', not {path!r}")


@dataclass(frozen=True)
class ListenerConfig:
    """
    A STOMP listener with options, from a C{[[listener]]} table; the
    top-level C{listen} list is the short form for listeners without any.

    @ivar endpoint: a Twisted endpoint string, as in C{listen}.
    @ivar oci_compat: behave as OCI Queue's STOMP interface does, so that an
        application written for it runs unchanged (see docs/work-queues.md).
    """

    endpoint: str = ""
    oci_compat: bool = False

    def __post_init__(self) -> None:
        if not self.endpoint:
            raise ValueError("endpoint is required")


@dataclass(frozen=True)
class StorageConfig:
    """
    @ivar backend: the name of an C{stompd.storage} entry point.
    @ivar settings: the plugins' own tables (C{[storage.redis]} is
        C{settings["redis"]}), each parsed by its plugin (see
        L{stompd.plugins}).
    """

    backend: str = "memory"
    settings: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ManagementConfig:
    """
    @ivar listen: Twisted endpoint strings of the management listener
        (metrics); empty for none.
    @ivar metrics_auth: C{/metrics} needs HTTP Basic credentials of a user
        in group C{monitor} or C{admin}.
    """

    listen: tuple[str, ...] = ()
    metrics_auth: bool = False


@dataclass(frozen=True)
class LoggingConfig:
    """
    @ivar format: C{"text"} (twistd's lines) or C{"json"} (one JSON object
        per line).
    @ivar level: the lowest level logged: C{debug}, C{info}, C{warn},
        C{error} or C{critical}.
    """

    format: str = "text"
    level: str = "info"

    def __post_init__(self) -> None:
        if self.format not in ("text", "json"):
            raise ValueError(f"format must be 'text' or 'json', not {self.format!r}")
        if self.level not in ("debug", "info", "warn", "error", "critical"):
            raise ValueError(f"level must be one of debug, info, warn, error, critical, not {self.level!r}")


@dataclass(frozen=True)
class AuthorizationRule:
    """
    One C{[[authorization.rules]]} table.

    @ivar users: user names it is for; C{"*"} is every authenticated user.
    @ivar groups: groups (from the users file) it is for.
    @ivar vhost: the virtual host it is for; C{"*"} is every one.
    @ivar destinations: destination patterns, in the broker's wildcard
        syntax (C{/queue/orders.*}, C{/topic/prices.#}).
    @ivar permissions: C{"read"} (SUBSCRIBE) and/or C{"write"} (SEND).
    @ivar access: C{"allow"} or C{"deny"}.
    """

    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    vhost: str = "*"
    destinations: tuple[str, ...] = ()
    permissions: tuple[str, ...] = ()
    access: str = "allow"

    def __post_init__(self) -> None:
        if not self.users and not self.groups:
            raise ValueError("a rule names users or groups ('*' is every authenticated user)")
        if not self.destinations:
            raise ValueError("destinations: name at least one destination pattern")
        for destination in self.destinations:
            if not destination.startswith("/"):
                raise ValueError(f"destinations: patterns are destinations like '/queue/orders.*', not {destination!r}")
        if not self.permissions:
            raise ValueError("permissions: name 'read', 'write' or both")
        for permission in self.permissions:
            if permission not in ("read", "write"):
                raise ValueError(
                    f"permissions: 'read' (SUBSCRIBE) or 'write' (SEND), not {permission!r}; "
                    "creating a queue by first use needs no permission of its own"
                )
        if self.access not in ("allow", "deny"):
            raise ValueError(f"access must be 'allow' or 'deny', not {self.access!r}")


@dataclass(frozen=True)
class AuthorizationConfig:
    """
    @ivar default: C{"allow"} or C{"deny"}: what happens to a frame no
        rule matches.
    @ivar rules: the rules, in order; the first matching a frame decides.
    """

    default: str = "allow"
    rules: tuple[AuthorizationRule, ...] = ()

    def __post_init__(self) -> None:
        if self.default not in ("allow", "deny"):
            raise ValueError(f"default must be 'allow' or 'deny', not {self.default!r}")


@dataclass(frozen=True)
class DiscoveryConfig:
    """
    @ivar advertise: discovery URIs (C{multicast://default},
        C{redis://host:port/db}) through which this broker announces itself
        to fanout connectors, stompd's or ActiveMQ's.
    @ivar advertise_uri: the URI announced, where others reach this
        broker (C{tcp://HOST:PORT}).
    """

    advertise: tuple[str, ...] = ()
    advertise_uri: str = ""

    def __post_init__(self) -> None:
        if self.advertise and not self.advertise_uri:
            raise ValueError("advertise-uri is required with advertise: the URI others reach this broker at")


@dataclass(frozen=True)
class ConnectorConfig:
    """
    One C{[[connectors]]} table.

    @ivar name: shown in logs, errors and metrics; unique.
    @ivar type: the name of a C{stompd.connectors} entry point.
    @ivar options: every other key of the table, for the plugin to parse
        (see L{stompd.plugins}).
    """

    name: str = ""
    type: str = ""
    options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", self.name):
            raise ValueError("name is required: letters, digits, '.', '_' and '-', at most 64 of them")
        if not self.type:
            raise ValueError("type is required")


@dataclass(frozen=True)
class Config:
    """
    Everything C{twistd stompd} is configured with.

    @ivar node_id: this broker node's name among the nodes sharing a store,
        in message ids and logs; C{""} for a random one at start.
    """

    listen: tuple[str, ...] = ("tcp:61613",)
    listener: tuple[ListenerConfig, ...] = ()
    node_id: str = ""
    virtual_hosts: tuple[str, ...] = ("/",)
    server_name: str = "stompd"
    shutdown_timeout: float = 10.0
    connect_timeout: float = 30.0
    close_timeout: float = 5.0
    max_subscriptions: int = 1000
    max_transactions: int = 100
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    heart_beat: HeartBeatConfig = field(default_factory=HeartBeatConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    queues: QueueConfig = field(default_factory=QueueConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    websocket: WebSocketConfig = field(default_factory=WebSocketConfig)
    connectors: tuple[ConnectorConfig, ...] = ()
    discovery: DiscoveryConfig = field(default_factory=DiscoveryConfig)
    authorization: AuthorizationConfig = field(default_factory=AuthorizationConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    management: ManagementConfig = field(default_factory=ManagementConfig)

    def __post_init__(self) -> None:
        if "/" not in self.virtual_hosts:
            raise ValueError("virtual-hosts must include the default '/'")
        if self.shutdown_timeout < 0:
            raise ValueError("shutdown-timeout must not be negative")
        if self.connect_timeout <= 0 or self.close_timeout <= 0:
            raise ValueError("connect-timeout and close-timeout must be positive")
        if self.max_subscriptions < 1 or self.max_transactions < 1:
            raise ValueError("max-subscriptions and max-transactions must be at least 1")
        if not re.fullmatch(r"[A-Za-z0-9_.-]{0,64}", self.node_id):
            raise ValueError("node-id may hold only letters, digits, '.', '_' and '-', at most 64 of them")
        names = [connector.name for connector in self.connectors]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"connectors: two connectors are named {name!r}")


def _check_type(value, expected, where: str):
    """
    Check one TOML value against a dataclass field type; return it converted
    (lists become tuples, ints are accepted for floats).
    """
    if expected is bool:
        ok = isinstance(value, bool)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif expected is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif expected is str:
        ok = isinstance(value, str)
    elif expected == tuple[str, ...]:
        ok = isinstance(value, list) and all(isinstance(item, str) for item in value)
        value = tuple(value) if ok else value
    elif expected == tuple[int, ...]:
        ok = isinstance(value, list) and all(isinstance(item, int) and not isinstance(item, bool) for item in value)
        value = tuple(value) if ok else value
    else:
        raise TypeError(expected)
    if not ok:
        name = _LIST_NAMES.get(expected) or expected.__name__
        raise ConfigError(f"{where}: expected {_article(name)} {name}, got {value!r}")
    return value


_LIST_NAMES = {tuple[str, ...]: "list of strings", tuple[int, ...]: "list of integers"}


def _article(noun: str) -> str:
    return "an" if noun[0] in "aeiou" else "a"


def _tuple_item(annotation):
    """
    The item type of a C{tuple[X, ...]} annotation, else C{None}.
    """
    if getattr(annotation, "__origin__", None) is tuple:
        return annotation.__args__[0]
    return None


def _build(cls, table: dict, where: str, top: str = "top level"):
    """
    Make a C{cls} from a TOML table, recursing into nested dataclasses.
    C{top} names the table itself in errors its checks raise.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    # A section with plugins keeps their tables for them to parse; a table
    # that is itself a plugin's keeps every key but its own for it.
    plugin_tables = {} if "settings" in fields else None
    plugin_options = {} if "options" in fields else None
    for key, value in table.items():
        name = key.replace("-", "_")
        place = f"{where}{key}"
        if plugin_tables is not None and name not in fields and isinstance(value, dict):
            plugin_tables[key] = value
            continue
        if plugin_options is not None and (name not in fields or name == "options"):
            plugin_options[key] = value
            continue
        if name not in fields or "_" in key or name == "settings":
            raise ConfigError(f"{place}: unknown key")
        expected = fields[name].type
        item = _tuple_item(expected)
        if item is not None and dataclasses.is_dataclass(item):
            if not isinstance(value, list) or not all(isinstance(entry, dict) for entry in value):
                raise ConfigError(f"{place}: expected an array of tables ([[{key}]]), got {value!r}")
            values[name] = tuple(_build(item, entry, f"{place}[{n}].") for n, entry in enumerate(value))
        elif dataclasses.is_dataclass(expected):
            if not isinstance(value, dict):
                raise ConfigError(f"{place}: expected a table, got {value!r}")
            values[name] = _build(expected, value, f"{place}.")
        else:
            values[name] = _check_type(value, expected, place)
    if plugin_tables:
        values["settings"] = plugin_tables
    if plugin_options:
        values["options"] = plugin_options
    try:
        return cls(**values)
    except ValueError as e:
        # Name keys as the file spells them: the codec's Limits reports its
        # attribute names (max_body_size), the file says max-body-size.
        problem = str(e)
        for name in fields:
            problem = problem.replace(name, name.replace("_", "-"))
        label = where.rstrip(".") or top
        raise ConfigError(f"{label}: {problem}" if label else problem) from None


def parse_table(cls, table: dict):
    """
    Make the frozen dataclass C{cls} from a plugin's own table (see
    L{stompd.plugins}), by the rules of the whole file: kebab-case keys for
    its fields, their types checked, unknown keys refused. A C{ValueError}
    from C{cls}'s checks should start with the key it is about
    (C{"url: ..."}).

    @raise ConfigError: naming the key, relative to the table.
    """
    return _build(cls, table, "", top="")


def parse_config(text: str, path: str = "<config>") -> Config:
    """
    Parse the TOML C{text} of the file at C{path}.

    @raise ConfigError: naming C{path}, the key and the problem.
    """
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    try:
        return _build(Config, table, "")
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def load_config(path: str) -> Config:
    """
    Read and parse the configuration file at C{path}.

    @raise ConfigError: if it cannot be read or is not valid.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read configuration: {e.strerror}") from None
    return parse_config(text, path)
