"""
Log formats and levels for C{twistd stompd}: C{[logging] format = "json"}
(or C{--log-format json}) writes one JSON object per line, nothing else on
the line, for journald and log shippers; C{level} (or C{--log-level})
drops what is below it.
"""

import json
import sys
import time

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    textFileLogObserver,
)
from zope.interface import provider

FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warn", "error", "critical")

# Fields every event has that the JSON line carries under its own names.
_INTERNAL = ("log_", "failure")


def json_line(event: dict) -> str:
    """
    One event as one line of JSON: C{time} (ISO 8601, UTC), C{level},
    C{namespace}, C{message}, the event's own fields where they are plain
    values, and C{traceback} for a failure.
    """
    when = event.get("log_time", time.time())
    line = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + f".{int(when % 1 * 1000):03d}Z",
        "level": getattr(event.get("log_level"), "name", "info"),
        "namespace": event.get("log_namespace", ""),
        "message": formatEvent(event),
    }
    for name, value in event.items():
        if name.startswith(_INTERNAL) or name in line or name in ("format", "message", "isError", "system", "time"):
            continue
        if isinstance(value, (str, int, float, bool)) or value is None:
            line[name] = value
        else:
            line[name] = str(value)
    failure = event.get("log_failure")
    if failure is not None:
        line["traceback"] = failure.getTraceback()
    # Newlines inside values are escaped by json: one line per event.
    return json.dumps(line, ensure_ascii=False)


def json_observer(out) -> ILogObserver:
    @provider(ILogObserver)
    def observe(event: dict) -> None:
        out.write(json_line(event) + "\n")
        out.flush()

    return observe


def make_observer(format: str, level: str, path: str = "") -> ILogObserver:
    """
    An observer of events at C{level} or above, in C{format}, to C{path}
    (standard output when empty or C{-}).
    """
    global _predicate
    out = sys.stdout if path in ("", "-") else open(path, "a", encoding="utf-8")
    observer = json_observer(out) if format == "json" else textFileLogObserver(out)
    _predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.levelWithName(level))
    return FilteringLogObserver(observer, [_predicate])


# The level filter of the observer made, for set_level.
_predicate: LogLevelFilterPredicate | None = None


def set_level(level: str) -> bool:
    """
    Change the lowest level logged (on SIGHUP).

    @return: whether it changed: only the observers made here can.
    """
    if _predicate is None:
        return False
    _predicate.setLogLevelForNamespace(None, LogLevel.levelWithName(level))
    return True


# twistd's --logger option names a factory by its dotted name, made once
# twistd has read every option: what the stompd options chose waits here.
_chosen: tuple[str, str, str] = ("text", "info", "")

CONFIGURED_OBSERVER = "stompd.logs.configured_observer"


def choose(format: str, level: str, path: str = "") -> None:
    """
    What L{configured_observer} makes, as the configuration says.
    """
    global _chosen
    _chosen = (format, level, path)


def configured_observer() -> ILogObserver:
    """
    The observer L{choose} chose; twistd calls it (C{--logger}).
    """
    return make_observer(*_chosen)
