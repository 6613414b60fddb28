"""
Finding plugins: storage backends, authenticators, connectors and discovery
agents are named in the configuration and found through packaging entry
points, built-ins included, so a third-party package adds one by declaring
an entry point::

    entry_points={"stompd.storage": ["mystore = mypackage.store:create_store"]}

The entry point is a callable taking C{(config, reactor)} and returning a
provider of the group's interface; it is loaded only when configured, and
checked with C{verifyObject}.
"""

from importlib.metadata import entry_points

from zope.interface.exceptions import Invalid
from zope.interface.verify import verifyObject

from stompd.errors import ConfigError

STORAGE = "stompd.storage"
AUTH = "stompd.auth"


def available(group: str) -> list[str]:
    """
    The names of the installed plugins of C{group}.
    """
    return sorted(ep.name for ep in entry_points(group=group))


def create(group: str, name: str, interface, *args):
    """
    Load plugin C{name} of C{group}, call it with C{args}, and check that
    what it returns provides C{interface}.

    @raise ConfigError: naming the plugin and its distribution when it is
        missing, fails to load, or does not provide C{interface}.
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
        instance = factory(*args)
    except ConfigError:
        raise
    except Exception as e:
        raise ConfigError(f"{origin} failed to load: {e.__class__.__name__}: {e}") from e
    try:
        verifyObject(interface, instance)
    except Invalid as e:
        raise ConfigError(f"{origin} does not provide {interface.__name__}: {e}") from None
    return instance
