"""
The management API: JSON under C{/api/}, described by C{/api/openapi.json}.
HTTP Basic against the broker's users; reading needs group C{monitor} or
C{admin}, changing anything C{admin}. Bad input gets a JSON error with a
4xx code.
"""

import inspect
import json
from urllib.parse import quote

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from stompd import __version__
from stompd.broker.destination import TOPIC_PREFIX
from stompd.broker.immediate import as_deferred
from stompd.broker.metrics import DestinationCounts
from stompd.broker.policy import DEFAULT_POLICY
from stompd.errors import AuthenticationError, StompError
from stompd.management.auth import READERS, basic_credentials

WRITERS = frozenset(("admin",))
# Dead letters moved back per store call.
_MOVE_BATCH = 100
# The headers a dead letter got on its way to the dead-letter queue.
_DEAD_LETTER_HEADERS = (
    "original-destination",
    "original-message-id",
    "dead-letter-reason",
    "original-delivery-count",
    "first-delivered-at",
    "last-delivered-at",
)


class ApiError(Exception):
    def __init__(self, code: int, error: str, detail: str = "") -> None:
        super().__init__(error)
        self.code = code
        self.error = error
        self.detail = detail


class ApiResource(Resource):
    """
    Everything under C{/api/}.
    """

    isLeaf = True
    log = Logger()

    def __init__(self, broker) -> None:
        super().__init__()
        self._broker = broker
        self._routes = [
            ("GET", ("overview",), self.overview, READERS),
            ("GET", ("vhosts",), self.vhosts, READERS),
            ("GET", ("destinations",), self.destinations, READERS),
            ("GET", ("connections",), self.connections, READERS),
            ("DELETE", ("connections", None), self.close_connection, WRITERS),
            ("DELETE", ("queues", None, None), self.delete_queue, WRITERS),
            ("POST", ("queues", None, None, "purge"), self.purge_queue, WRITERS),
            ("POST", ("queues", None, None, "move-dead-letters"), self.move_dead_letters, WRITERS),
        ]

    def render(self, request):
        path = tuple(segment.decode("utf-8", "replace") for segment in request.postpath)
        method = request.method.decode("ascii", "replace")
        if path == ("openapi.json",) and method == "GET":
            return _json(request, 200, OPENAPI)
        handled = Deferred.fromCoroutine(self._handle(request, method, path))
        handled.addCallbacks(lambda body: self._finish(request, 200, body), lambda failure: self._failed(request, failure))
        request.notifyFinish().addErrback(lambda _: None)
        return NOT_DONE_YET

    async def _handle(self, request, method: str, path: tuple):
        route = self._route(method, path)
        handler, groups, arguments = route
        user = await self._authenticated(request)
        if groups.isdisjoint(self._broker.groups(user)):
            raise ApiError(403, "forbidden", f"User {user!r} needs group {' or '.join(sorted(groups))}.")
        result = handler(*arguments)
        return (await result) if inspect.isawaitable(result) else result

    def _route(self, method: str, path: tuple):
        known_path = False
        for route_method, pattern, handler, groups in self._routes:
            if len(pattern) != len(path) or any(part is not None and part != got for part, got in zip(pattern, path)):
                continue
            known_path = True
            if route_method == method:
                return handler, groups, [got for part, got in zip(pattern, path) if part is None]
        if known_path:
            raise ApiError(405, "method not allowed", f"{method} is not allowed on /api/{'/'.join(path)}.")
        raise ApiError(404, "not found", f"No /api/{'/'.join(path)}; see /api/openapi.json.")

    async def _authenticated(self, request) -> str:
        credentials = basic_credentials(request)
        if credentials is None:
            raise ApiError(401, "credentials needed", "Use HTTP Basic with a broker user.")
        login, passcode = credentials
        try:
            return await maybeDeferred(self._broker.authenticate, login, passcode, "/")
        except AuthenticationError:
            raise ApiError(401, "bad credentials", "Wrong user name or password.") from None

    def _finish(self, request, code: int, body) -> None:
        if not request.finished and not request._disconnected:
            request.write(_json(request, code, body))
            request.finish()

    def _failed(self, request, failure) -> None:
        if failure.check(ApiError):
            error = failure.value
            if error.code == 401:
                request.setHeader(b"www-authenticate", b'Basic realm="stompd"')
            self._finish(request, error.code, {"error": error.error, "detail": error.detail})
        elif failure.check(StompError):
            self._finish(request, 503, {"error": failure.value.message, "detail": failure.value.detail})
        else:
            self.log.failure("Management API request failed", failure)
            self._finish(request, 500, {"error": "internal error", "detail": "See the broker's log."})

    # Reading

    def overview(self):
        broker = self._broker
        return {
            "version": __version__,
            "node_id": broker.node_id,
            "uptime_seconds": round(broker.clock.seconds() - broker.started_at, 3),
            "connections": len(broker.sessions),
            "queues": sum(len(vhost.queues) for vhost in broker.vhosts.values()),
            "messages": dict(broker.counters.totals(broker.sessions).messages),
            "connectors": [
                {"name": connector.name, "upstreams_connected": connector.upstreams_connected()}
                for connector in broker.connectors.connectors
            ],
        }

    def vhosts(self):
        return [
            {"name": vhost.name, "queues": len(vhost.queues)} for vhost in self._broker.vhosts.values()
        ]

    async def destinations(self):
        found = []
        for vhost in self._broker.vhosts.values():
            for key, queue in sorted(vhost.queues.items()):
                # One O(1) store call per queue: what waits, now.
                queue.depth_seen(await self._broker.store.depth(key))
                found.append(
                    {
                        "vhost": vhost.name,
                        "kind": "queue",
                        "queue": key,
                        "ready": queue.depth,
                        "unacked": sum(len(subscription.unacked) for subscription in queue.consumers),
                        "consumers": len(queue.consumers),
                        **_counted(queue.counts),
                        "path": f"/api/queues/{quote(vhost.name, safe='')}/{quote(key, safe='')}",
                    }
                )
            topics = vhost.topics
            for name in sorted(set(topics.counts).union(topics.subscribed_names())):
                counts = topics.counts.get(name)
                found.append(
                    {
                        "vhost": vhost.name,
                        "kind": "topic",
                        "topic": TOPIC_PREFIX + name,
                        "consumers": topics.subscribers(name),
                        **_counted(DestinationCounts() if counts is None else counts),
                    }
                )
        return found

    def _open_sessions(self):
        """
        The sessions still going: one that has ended is no longer a
        connection to list or close, though its socket may stay open a
        moment, until the client has its last frames.
        """
        return [session for session in self._broker.sessions if not session.closing]

    def connections(self):
        clock = self._broker.clock
        found = []
        for session in self._open_sessions():
            peer = session.transport.getPeer()
            found.append(
                {
                    "session": session.session_id,
                    "peer": f"{peer.host}:{peer.port}" if getattr(peer, "host", None) else "unix",
                    "user": session.user,
                    "vhost": session.vhost.name if session.vhost is not None else None,
                    "transport": session.kind,
                    "version": session.version,
                    "subscriptions": len(session.subscriptions),
                    "connected_seconds": None
                    if session.connected_at is None
                    else round(clock.seconds() - session.connected_at, 3),
                }
            )
        return sorted(found, key=lambda connection: connection["session"])

    # Changing

    def close_connection(self, session_id: str):
        for session in self._open_sessions():
            if session.session_id == session_id:
                session.close_by_administrator()
                return {"closed": session_id}
        raise ApiError(404, "no such connection", f"No connection {session_id!r}.")

    def _queue(self, vhost_name: str, key: str):
        vhost = self._broker.vhosts.get(vhost_name)
        if vhost is None:
            raise ApiError(404, "no such virtual host", f"No virtual host {vhost_name!r}.")
        if not key.startswith("/") and not key.startswith("vhost:") and not key.startswith("durable:"):
            raise ApiError(400, "bad queue name", f"{key!r} is not a queue's name (see /api/destinations).")
        return vhost

    async def purge_queue(self, vhost_name: str, key: str):
        self._queue(vhost_name, key)
        purged = await self._broker.store.purge(key)
        queue = self._broker.vhosts[vhost_name].queues.get(key)
        if queue is not None:
            queue.purged()
        return {"purged": purged}

    async def delete_queue(self, vhost_name: str, key: str):
        vhost = self._queue(vhost_name, key)
        await vhost.delete_queue(key)
        return {"deleted": key}

    async def move_dead_letters(self, vhost_name: str, key: str):
        """
        Publish the messages of dead-letter queue C{key} again to the
        queues they died in, as they were (without the dead-letter
        headers), and remove them from it.
        """
        vhost = self._queue(vhost_name, key)
        store = self._broker.store
        moved = skipped = 0
        while True:
            batch = await store.reserve(key, _MOVE_BATCH, self._broker.clock.seconds(), DEFAULT_POLICY)
            if not batch:
                break
            keep = []
            for message in batch:
                original = message.headers.get("original-destination")
                if original is None:
                    keep.append((message.id, message.delivery_count))
                    continue
                headers = {name: value for name, value in message.headers.items() if name not in _DEAD_LETTER_HEADERS}
                headers["destination"] = original
                await as_deferred(vhost.publish("", headers, message.body))
                await store.ack(key, [(message.id, message.delivery_count)])
                moved += 1
            if keep:
                # Not a dead letter: left where it is.
                await store.release(key, keep, None)
                skipped += len(keep)
                break
        return {"moved": moved, "left": skipped}


def _counted(counts) -> dict:
    """
    A destination's counts and their rates over the last sample interval.
    """
    published, delivered, acked = counts.rates
    return {
        "published": counts.published,
        "delivered": counts.delivered,
        "acked": counts.acked,
        "published_per_second": round(published, 3),
        "delivered_per_second": round(delivered, 3),
        "acked_per_second": round(acked, 3),
    }


def _json(request, code: int, body) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(body, indent=1).encode("utf-8") + b"\n"


def _operation(summary: str, writes: bool = False, parameters=()) -> dict:
    return {
        "summary": summary,
        "security": [{"basic": []}],
        "parameters": [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}} for name in parameters],
        "responses": {
            "200": {"description": "OK, as JSON"},
            "401": {"description": "no or bad credentials"},
            "403": {"description": f"not in group {'admin' if writes else 'monitor or admin'}"},
            "404": {"description": "no such thing"},
        },
    }


_QUEUE = ("vhost", "queue")
OPENAPI = {
    "openapi": "3.0.3",
    "info": {"title": "stompd management API", "version": __version__},
    "components": {"securitySchemes": {"basic": {"type": "http", "scheme": "basic"}}},
    "paths": {
        "/api/overview": {"get": _operation("Version, node id, uptime and totals.")},
        "/api/vhosts": {"get": _operation("Virtual hosts and their queue counts.")},
        "/api/destinations": {
            "get": _operation(
                "Queues (kind queue: ready, unacknowledged, consumers) and topics (kind topic: subscribers here); "
                "for each, messages published, delivered and acknowledged on this node, and their rates over the last 5 s."
            )
        },
        "/api/connections": {"get": _operation("Client connections: peer, user, transport, version, subscriptions.")},
        "/api/connections/{session}": {
            "delete": _operation("Close a connection; the client gets an ERROR saying why.", True, ("session",))
        },
        "/api/queues/{vhost}/{queue}": {"delete": _operation("Delete a queue and its messages.", True, _QUEUE)},
        "/api/queues/{vhost}/{queue}/purge": {
            "post": _operation("Remove the messages waiting in a queue; deliveries in flight are spared.", True, _QUEUE)
        },
        "/api/queues/{vhost}/{queue}/move-dead-letters": {
            "post": _operation("Send the messages of a dead-letter queue back to their original queues.", True, _QUEUE)
        },
    },
}
