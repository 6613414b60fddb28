"""
The management listener's twisted.web site: C{GET /metrics}, the JSON API
under C{/api/}, and the console at C{/}.
"""

from pathlib import Path

from twisted.internet.defer import maybeDeferred
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site
from twisted.web.static import File

from stompd.management.api import ApiResource
from stompd.management.auth import READERS, basic_credentials
from stompd.management.metrics import CONTENT_TYPE, render

STATIC = Path(__file__).parent / "static"


class MetricsResource(Resource):
    """
    Prometheus' text format; with C{metrics-auth}, only for users in group
    C{monitor} or C{admin} (HTTP Basic, the broker's users).
    """

    isLeaf = True
    log = Logger()

    def __init__(self, broker, authenticate: bool) -> None:
        super().__init__()
        self._broker = broker
        self._authenticate = authenticate

    def render_GET(self, request):
        if not self._authenticate:
            return self._metrics(request)
        credentials = basic_credentials(request)
        if credentials is None:
            return _unauthorized(request)
        login, passcode = credentials
        checking = maybeDeferred(self._broker.authenticate, login, passcode, "/")

        def checked(user):
            if READERS.isdisjoint(self._broker.groups(user)):
                request.setResponseCode(403)
                request.write(b"group monitor or admin needed\n")
            else:
                request.write(self._metrics(request))
            request.finish()

        def refused(failure):
            if not request.finished:
                _unauthorized(request)
                request.finish()

        checking.addCallbacks(checked, refused)
        request.notifyFinish().addErrback(lambda _: None)
        return NOT_DONE_YET

    def _metrics(self, request) -> bytes:
        request.setHeader(b"content-type", CONTENT_TYPE.encode())
        return render(self._broker)


def _unauthorized(request) -> bytes:
    request.setResponseCode(401)
    request.setHeader(b"www-authenticate", b'Basic realm="stompd"')
    return b"credentials needed\n"


def make_management_site(broker, config) -> Site:
    """
    The site of C{[management] listen}.
    """
    # The console's page and scripts at /; they read the API.
    root = File(str(STATIC))
    root.putChild(b"metrics", MetricsResource(broker, config.metrics_auth))
    root.putChild(b"api", ApiResource(broker))
    site = _QuietSite(root)
    site.noisy = False
    return site


class _QuietSite(Site):
    """
    A site without access log lines: a scraper asks every few seconds.
    """

    def log(self, request) -> None:
        pass
