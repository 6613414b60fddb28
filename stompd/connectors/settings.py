"""
What every upstream connector is configured with, from its
C{[[connectors]]} table, and the URIs naming an upstream broker.
"""

from dataclasses import dataclass

from twisted.internet.endpoints import clientFromString

from stompd.errors import ConfigError

# URI schemes an upstream may be written with (ActiveMQ's spellings
# included), and the Twisted client endpoint type each means. tls: checks
# the broker's certificate and host name (service_identity).
_SCHEMES = {"tcp": "tcp", "stomp": "tcp", "ssl": "tls", "tls": "tls", "stomp+ssl": "tls"}


@dataclass(frozen=True)
class UpstreamSettings:
    """
    @ivar name: the connector's name.
    @ivar uri: the upstream broker (see L{endpoint_description}); a fanout
        connector's own URI form is its own business.
    @ivar login: sent in CONNECT to every upstream; C{""} for none.
    @ivar passcode: likewise.
    @ivar host: the CONNECT C{host} header (the upstream's virtual host).
    @ivar prefixes: the destinations the connector owns.
    @ivar heart_beat: C{[send, receive]} milliseconds offered in CONNECT.
    @ivar buffer: SENDs that may wait for an upstream to be connected; 0
        refuses them at once.
    @ivar send_timeout: seconds a forwarded SEND may wait for an upstream
        (its RECEIPT, or a connection to be sent on) before its client gets
        an ERROR.
    """

    name: str = ""
    uri: str = ""
    login: str = ""
    passcode: str = ""
    host: str = "/"
    prefixes: tuple[str, ...] = ()
    heart_beat: tuple[int, ...] = (10000, 10000)
    buffer: int = 0
    send_timeout: float = 30.0

    def __post_init__(self) -> None:
        if not self.uri:
            raise ValueError("uri: is required")
        if not self.prefixes:
            raise ValueError("prefixes: name at least one destination prefix, like '/topic/ext.'")
        for prefix in self.prefixes:
            if not prefix.startswith("/") or len(prefix) < 2:
                raise ValueError(f"prefixes: a prefix starts a destination, like '/queue/ext.', not {prefix!r}")
        if len(self.heart_beat) != 2 or min(self.heart_beat) < 0:
            raise ValueError(f"heart-beat: expected [send, receive] milliseconds, got {list(self.heart_beat)!r}")
        if self.buffer < 0:
            raise ValueError(f"buffer: must not be negative, got {self.buffer}")
        if self.send_timeout <= 0:
            raise ValueError(f"send-timeout: must be positive, got {self.send_timeout}")


def endpoint_description(uri: str) -> str:
    """
    The Twisted client endpoint string for an upstream URI: C{tcp://HOST:PORT}
    (or C{stomp://}), C{ssl://HOST:PORT} (or C{tls://}, C{stomp+ssl://}:
    TLS, the certificate checked against the host name), or already an
    endpoint string (C{tcp:host=H:port=P}, C{tls:H:P}, C{unix:path=...}).

    @raise ValueError: for a URI of another scheme, or without a port.
    """
    scheme, separator, rest = uri.partition("://")
    if not separator:
        return uri
    kind = _SCHEMES.get(scheme)
    if kind is None:
        raise ValueError(f"unknown scheme {scheme!r} in {uri!r}; use tcp://, ssl:// or a Twisted endpoint string")
    address = rest.split("?", 1)[0].rstrip("/")
    host, _, port = address.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected {scheme}://HOST:PORT, got {uri!r}")
    # Colons in an IPv6 address are escaped in endpoint strings.
    return f"{kind}:host={host.replace(':', chr(92) + ':')}:port={port}"


def client_endpoint(reactor, uri: str, key: str = "uri"):
    """
    The client endpoint for C{uri}, checked now so that a bad one is a
    start-up error.

    @raise ConfigError: naming C{key} and the problem.
    """
    try:
        return clientFromString(reactor, endpoint_description(uri))
    except Exception as e:
        # Parsing may read certificate files, so it fails in many ways.
        raise ConfigError(f"{key}: invalid upstream {uri!r}: {e}") from None
