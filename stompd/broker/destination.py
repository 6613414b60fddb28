"""
Destination names: what kind of destination a string names, and wildcard
patterns for topic subscriptions.
"""

import re

from stompd.errors import DestinationError

TOPIC = "topic"
QUEUE = "queue"
# A destination a connector serves from another broker.
REMOTE = "remote"

TOPIC_PREFIX = "/topic/"
_QUEUE_PREFIX = "/queue/"
TEMP_QUEUE_PREFIX = "/temp-queue/"
REPLY_QUEUE_PREFIX = "/reply-queue/"

# A wildcard is a whole segment; segments are separated by dots or slashes,
# so "/topic/a.*" and "/topic/a/*" both work as their users expect.
SEGMENT_SPLIT = re.compile(r"([./])")
ONE_SEGMENT = "*"
ANY_SEGMENTS = frozenset({"#", ">"})


class Route:
    """
    Where a destination string leads. Once a virtual host has handed one
    out it is never changed: routes of queues and topics are shared by
    every SEND to the same destination.

    @ivar kind: L{TOPIC}, L{QUEUE} or L{REMOTE}.
    @ivar key: for a topic, its name (matched against patterns); for a
        queue, the name the store knows it by.
    @ivar owner: for a temporary queue, the id of the session it belongs
        to and is deleted with; otherwise C{None}.
    @ivar name: the destination that names the queue or topic, without a
        channel (what C{{name}} stands for in a dead-letter queue pattern).
    @ivar channel: the channel of the queue the destination names, or
        C{None}.
    @ivar connector: for a L{REMOTE} destination, the
        L{stompd.interfaces.IConnector} serving it.
    """

    __slots__ = ("kind", "key", "owner", "name", "channel", "connector")

    def __init__(
        self,
        kind: str,
        key: str,
        owner: str | None = None,
        name: str = "",
        channel: str | None = None,
        connector=None,
    ) -> None:
        self.kind = kind
        self.key = key
        self.owner = owner
        self.name = name or key
        self.channel = channel
        self.connector = connector


def temp_queue_key(session_id: str, name: str) -> str:
    """
    The store name of a session's C{/temp-queue/NAME}.
    """
    return f"{TEMP_QUEUE_PREFIX}{session_id}/{name}"


def reply_destination(session_id: str, name: str) -> str:
    """
    What a C{reply-to: /temp-queue/NAME} header is rewritten to, so that
    another client can send to that session's temporary queue.
    """
    return f"{REPLY_QUEUE_PREFIX}{session_id}/{name}"


def route(destination: str, session_id: str, bare_queues: bool = False) -> Route:
    """
    Parse a C{destination} header sent by session C{session_id}.

    @param bare_queues: also route a name without a leading slash, as OCI
        Queue's C{QUEUE_ID} or C{QUEUE_ID/CHANNEL}, to C{/queue/QUEUE_ID}.
    @raise DestinationError: for a name this broker does not route.
    """
    if destination.startswith(TOPIC_PREFIX) and len(destination) > len(TOPIC_PREFIX):
        return Route(TOPIC, destination[len(TOPIC_PREFIX) :])
    if destination.startswith(_QUEUE_PREFIX) and len(destination) > len(_QUEUE_PREFIX):
        return Route(QUEUE, destination)
    if destination.startswith(TEMP_QUEUE_PREFIX) and len(destination) > len(TEMP_QUEUE_PREFIX):
        return Route(
            QUEUE, temp_queue_key(session_id, destination[len(TEMP_QUEUE_PREFIX) :]), session_id, destination
        )
    if destination.startswith(REPLY_QUEUE_PREFIX):
        owner, _, name = destination[len(REPLY_QUEUE_PREFIX) :].partition("/")
        if owner and name:
            return Route(QUEUE, temp_queue_key(owner, name), owner, TEMP_QUEUE_PREFIX + name)
    if bare_queues and destination and not destination.startswith("/"):
        queue, _, channel = destination.partition("/")
        name = _QUEUE_PREFIX + queue
        return Route(QUEUE, name, channel=channel or None)
    raise DestinationError(
        "unknown destination",
        f"Destination {destination!r} is not routed here: use /topic/NAME, "
        "/queue/NAME or /temp-queue/NAME.",
    )


def channel_queue_matcher(patterns: tuple[str, ...]):
    """
    A function splitting a queue destination C{/queue/NAME/CHANNEL} into
    C{("/queue/NAME", "CHANNEL")} when C{/queue/NAME} matches one of
    C{patterns} (C{*} stands for any part of one segment), and returning
    C{None} otherwise, so that other queue names with slashes keep working.
    The shortest matching C{NAME} wins.
    """
    compiled = re.compile(
        "|".join("".join("[^/]*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", p)) for p in patterns)
    )

    def split(destination: str):
        start = len(_QUEUE_PREFIX)
        while (slash := destination.find("/", start)) > 0:
            if compiled.fullmatch(destination, 0, slash) and slash + 1 < len(destination):
                return destination[:slash], destination[slash + 1 :]
            start = slash + 1
        return None

    return split


def is_pattern(topic: str) -> bool:
    """
    Does this topic name contain a wildcard segment?
    """
    return any(
        part == ONE_SEGMENT or part in ANY_SEGMENTS for part in SEGMENT_SPLIT.split(topic)
    )


def compile_pattern(topic: str) -> re.Pattern:
    """
    Compile a topic pattern: C{*} matches exactly one segment, C{#} (or
    C{>}, as ActiveMQ spells it) zero or more.
    """
    parts = SEGMENT_SPLIT.split(topic)
    # parts alternates segment, separator, segment, ...
    regex = []
    for index in range(0, len(parts), 2):
        segment = parts[index]
        separator = re.escape(parts[index - 1]) if index else ""
        if segment in ANY_SEGMENTS:
            if index:
                # "a.#" matches "a" too: the separator goes with the segments.
                regex.append(f"(?:{separator}.*)?")
            else:
                regex.append(r"(?:.*)")
        elif segment == ONE_SEGMENT:
            regex.append(f"{separator}[^./]+")
        else:
            regex.append(separator + re.escape(segment))
    joined = "".join(regex)
    if parts[0] in ANY_SEGMENTS and len(parts) > 1:
        # "#.b" matches "b" as well as "x.y.b".
        joined = r"(?:.*[./])?" + "".join(regex[1:])[len(re.escape(parts[1])) :]
    return re.compile(joined + r"\Z", re.DOTALL)
