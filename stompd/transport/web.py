"""
The HTTP side of the WebSocket listener: the WebSocket paths, and the
built-in page at C{/}.
"""

from pathlib import Path

from autobahn.twisted.resource import WebSocketResource
from twisted.web.resource import NoResource, Resource
from twisted.web.server import Site
from twisted.web.static import File

from stompd.transport.websocket import StompWebSocketFactory

STATIC = Path(__file__).parent / "static"


class _UpgradeResource(WebSocketResource):
    """
    Hands an upgrade request's connection to Autobahn.
    """

    def render(self, request):
        # The connection leaves twisted.web for good: its idle timeout must
        # not close a WebSocket that is quiet between heart-beats.
        request.channel.setTimeout(None)
        return super().render(request)


def make_site(broker, config) -> Site:
    """
    A site answering WebSocket upgrades on C{config.paths} and, if
    C{config.page}, serving the built-in page everywhere else.

    @param config: a L{stompd.config.WebSocketConfig}.
    """
    factory = StompWebSocketFactory(broker, config.allowed_origins, config.heart_beat_grace)
    if config.page:
        root = File(str(STATIC))
    else:
        # Unknown children are 404 already; "/" is the empty child.
        root = Resource()
        root.putChild(b"", NoResource())
    upgrade = _UpgradeResource(factory)
    for path in config.paths:
        root.putChild(path.strip("/").encode("utf-8"), upgrade)
    site = Site(root)
    site.noisy = False
    return site
