"""
Authorization: who may read (SUBSCRIBE) and write (SEND) which
destinations, by the C{[authorization]} rules. The first rule matching a
frame decides; without a match, C{default} does.

Rule destinations use the broker's wildcard syntax (C{*} one segment, C{#}
or C{>} any number, segments split by C{.} or C{/}) over whole destination
strings (C{/queue/orders.*}).
"""

from stompd.broker.destination import ANY_SEGMENTS, ONE_SEGMENT, REPLY_QUEUE_PREFIX, SEGMENT_SPLIT, TEMP_QUEUE_PREFIX

READ = "read"
WRITE = "write"
ALLOW = "allow"
DENY = "deny"
EVERYONE = "*"

# Destinations a wildcard subscriber was checked against, remembered.
_DECISIONS_LIMIT = 10_000


def segments(destination: str) -> tuple[str, ...]:
    """
    C{destination} split into segments (by C{.} and C{/}), C{>} read as C{#}.
    """
    # The separators (every second part) do not matter here.
    return tuple("#" if part in ANY_SEGMENTS else part for part in SEGMENT_SPLIT.split(destination)[::2])


def matches(pattern: tuple[str, ...], name: tuple[str, ...]) -> bool:
    """
    Does destination C{name} match C{pattern} (both as L{segments})?
    """
    if not pattern:
        return not name
    head = pattern[0]
    if head == "#":
        return any(matches(pattern[1:], name[start:]) for start in range(len(name) + 1))
    return bool(name) and (head == ONE_SEGMENT or head == name[0]) and matches(pattern[1:], name[1:])


def overlap(first: tuple[str, ...], second: tuple[str, ...]) -> bool:
    """
    Is there a destination both patterns match?
    """
    if not first or not second:
        rest = first or second
        return all(part == "#" for part in rest)
    a, b = first[0], second[0]
    if a == "#":
        return overlap(first[1:], second) or overlap(first, second[1:])
    if b == "#":
        return overlap(first, second[1:]) or overlap(first[1:], second)
    return (a == ONE_SEGMENT or b == ONE_SEGMENT or a == b) and overlap(first[1:], second[1:])


def covers(wide: tuple[str, ...], narrow: tuple[str, ...]) -> bool:
    """
    Does every destination C{narrow} matches also match C{wide}?
    """
    if not wide:
        return not narrow
    if not narrow:
        return all(part == "#" for part in wide)
    a, b = wide[0], narrow[0]
    if a == "#":
        return covers(wide[1:], narrow) or covers(wide, narrow[1:])
    if b == "#":
        return False
    return (a == ONE_SEGMENT or a == b) and covers(wide[1:], narrow[1:])


class Rule:
    """
    One C{[[authorization.rules]]} table, compiled.
    """

    __slots__ = ("users", "groups", "vhost", "destinations", "permissions", "access")

    def __init__(self, config) -> None:
        self.users = frozenset(config.users)
        self.groups = frozenset(config.groups)
        self.vhost = config.vhost
        self.destinations = [segments(destination) for destination in config.destinations]
        self.permissions = frozenset(config.permissions)
        self.access = config.access

    def applies(self, user: str | None, groups: frozenset, vhost: str, permission: str) -> bool:
        if permission not in self.permissions or self.vhost not in (EVERYONE, vhost):
            return False
        if user is None:
            return False
        return EVERYONE in self.users or user in self.users or not self.groups.isdisjoint(groups)


class Authorization:
    """
    The rules of one broker. C{None} users (anonymous clients) match only
    C{default}.
    """

    def __init__(self, config) -> None:
        self.default_allows = config.default == ALLOW
        self.rules = [Rule(rule) for rule in config.rules]
        # Nothing to check: every frame is allowed, as without rules.
        self.open = self.default_allows and not self.rules

    def allows(self, user, groups: frozenset, vhost: str, destination: str, permission: str) -> bool:
        """
        May C{user} (in C{groups}) C{permission} the destination?
        Temporary queues are not for rules: their owner reads them, and
        anyone may send to one named in a C{reply-to}.
        """
        if self.open or destination.startswith((TEMP_QUEUE_PREFIX, REPLY_QUEUE_PREFIX)):
            return True
        name = segments(destination)
        for rule in self.rules:
            if rule.applies(user, groups, vhost, permission) and any(matches(p, name) for p in rule.destinations):
                return rule.access == ALLOW
        return self.default_allows

    def _read_rules(self, user, groups: frozenset, vhost: str):
        """
        The rules that decide reads of C{user} in C{vhost}, in order.
        """
        return (rule for rule in self.rules if rule.applies(user, groups, vhost, READ))

    def may_read_some(self, user, groups: frozenset, vhost: str, pattern: str) -> bool:
        """
        Could the wildcard subscription C{pattern} cover a destination
        C{user} may read? Then it is accepted, and L{allows} decides for
        each message.
        """
        if self.open:
            return True
        wanted = segments(pattern)
        for rule in self._read_rules(user, groups, vhost):
            if rule.access == ALLOW:
                if any(overlap(p, wanted) for p in rule.destinations):
                    return True
            elif any(covers(p, wanted) for p in rule.destinations):
                # Everything it could cover is denied before any allow.
                return False
        return self.default_allows

    def may_read_all(self, user, groups: frozenset, vhost: str, pattern: str) -> bool:
        """
        May C{user} read every destination C{pattern} covers? A rule that
        decides only part of it counts as a no.
        """
        if self.open:
            return True
        wanted = segments(pattern)
        for rule in self._read_rules(user, groups, vhost):
            if any(covers(p, wanted) for p in rule.destinations):
                return rule.access == ALLOW
            if any(overlap(p, wanted) for p in rule.destinations):
                return False
        return self.default_allows


class ReadCheck:
    """
    Per-message read decisions for one wildcard subscription, remembered
    by destination.
    """

    __slots__ = ("_decide", "_decisions")

    def __init__(self, authorization: Authorization, user, groups: frozenset, vhost: str) -> None:
        self._decide = lambda destination: authorization.allows(user, groups, vhost, destination, READ)
        self._decisions: dict[str, bool] = {}

    def __call__(self, destination: str) -> bool:
        decided = self._decisions.get(destination)
        if decided is None:
            if len(self._decisions) >= _DECISIONS_LIMIT:
                self._decisions.clear()
            decided = self._decisions[destination] = self._decide(destination)
        return decided
