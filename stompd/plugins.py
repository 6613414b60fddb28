"""
Finding plugins: storage backends, authenticators, connectors and discovery
agents are named in the configuration and found through packaging entry
points, built-ins included, so a third-party package adds one by declaring
an entry point::

    entry_points={"stompd.storage": ["mystore = mypackage.store:create_store"]}

The entry point is a callable taking C{(config, reactor, settings)} and
returning a provider of the group's interface; it is loaded only when
configured, and what it returns is checked with C{verifyObject}.

A plugin owns its settings: the table named after it in the configuration
(C{[storage.redis]} for the storage plugin C{redis}). If the entry point has
a C{parse_config(table)} attribute, it is called first with that table (a
dict, empty when the file has none) and its result is the C{settings}; it
raises L{ConfigError} whose message starts with the key at fault
(C{"url: ..."}), and the error shown names the whole path
(C{storage.redis.url: ...}); L{stompd.config.parse_table} makes a
dataclass from the table by the rules of the whole file. Without
C{parse_config}, C{settings} is the table as it is.
"""

from importlib.metadata import entry_points

from zope.interface.exceptions import Invalid
from zope.interface.verify import verifyObject

from stompd.errors import ConfigError

STORAGE = "stompd.storage"
AUTH = "stompd.auth"
CONNECTORS = "stompd.connectors"
DISCOVERY = "stompd.discovery"


def available(group: str) -> list[str]:
    """
    The names of the installed plugins of C{group}.
    """
    return sorted(ep.name for ep in entry_points(group=group))


def check_tables(group: str, tables: dict, where: str) -> None:
    """
    Every plugin table in C{tables} (from the section C{where}) names an
    installed plugin of C{group}: a misspelt table is an error, not
    silently ignored. Tables of installed plugins not in use are allowed.

    @raise ConfigError: naming the table.
    """
    installed = available(group)
    for name in tables:
        if name not in installed:
            raise ConfigError(f"{where}.{name}: no {group} plugin named {name!r}; installed: {', '.join(installed) or 'none'}")


def create(group: str, name: str, interface, config, reactor, table: dict | None = None, where: str = ""):
    """
    Load plugin C{name} of C{group}, parse its settings from C{table} (see
    above; C{where} is the table's key path for errors, e.g.
    C{storage.redis}), call it with C{(config, reactor, settings)}, and
    check that what it returns provides C{interface}.

    @raise ConfigError: naming the plugin and its distribution when it is
        missing, fails to load, or does not provide C{interface}; naming
        the key path when its settings are wrong.
    """
    found = entry_points(group=group, name=name)
    if not found:
        raise ConfigError(f"no {group} plugin named {name!r}; installed: {', '.join(available(group)) or 'none'}")
    entry_point = next(iter(found))
    origin = f"{group} plugin {name!r} ({entry_point.value}"
    if entry_point.dist is not None:
        origin += f" from {entry_point.dist.name} {entry_point.dist.version}"
    origin += ")"
    try:
        factory = entry_point.load()
    except Exception as e:
        raise ConfigError(f"{origin} failed to load: {e.__class__.__name__}: {e}") from e
    settings = table or {}
    parse = getattr(factory, "parse_config", None)
    if parse is not None:
        try:
            settings = parse(settings)
        except ConfigError as e:
            raise ConfigError(f"{where or name}.{e}") from None
    try:
        instance = factory(config, reactor, settings)
    except ConfigError:
        raise
    except Exception as e:
        raise ConfigError(f"{origin} failed to load: {e.__class__.__name__}: {e}") from e
    try:
        verifyObject(interface, instance)
    except Invalid as e:
        raise ConfigError(f"{origin} does not provide {interface.__name__}: {e}") from None
    return instance
