"""
systemd's notify protocol, as a service of the twistd tree: C{READY=1}
once every listener is open, C{STATUS=} with the connection count,
C{WATCHDOG=1} while C{WatchdogSec} is set, C{STOPPING=1} on shutdown.

The protocol is one datagram per message to the UNIX socket named by
C{$NOTIFY_SOCKET} (a leading C{@} is the abstract namespace); a few lines
of our own rather than a dependency. Without C{$NOTIFY_SOCKET} (not run by
systemd with C{Type=notify}) this does nothing.
"""

import os
import socket

from twisted.application.service import Service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

# Seconds between STATUS= updates.
STATUS_INTERVAL = 10.0


class SystemdNotifier(Service):
    """
    Tells systemd how the broker is doing. The last child of the service
    tree: it starts once everything else has (listeners included), and
    stops first.
    """

    log = Logger()

    def __init__(self, reactor, broker, environ=None) -> None:
        self._reactor = reactor
        self._broker = broker
        self._environ = os.environ if environ is None else environ
        self._socket = None
        self._address = None
        self._loops: list[LoopingCall] = []

    def startService(self) -> None:
        Service.startService(self)
        address = self._environ.get("NOTIFY_SOCKET")
        if not address:
            return
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.setblocking(False)
        self.notify(f"READY=1\nSTATUS={self._status()}\nMAINPID={os.getpid()}")
        self._every(STATUS_INTERVAL, lambda: self.notify(f"STATUS={self._status()}"))
        interval = self._watchdog_interval()
        if interval:
            self._every(interval, lambda: self.notify("WATCHDOG=1"))

    def _every(self, interval: float, call) -> None:
        loop = LoopingCall(call)
        loop.clock = self._reactor
        loop.start(interval, now=False).addErrback(lambda f: self.log.failure("systemd notify", f))
        self._loops.append(loop)

    def _watchdog_interval(self) -> float | None:
        """
        Half of C{$WATCHDOG_USEC}, if the watchdog is for this process.
        """
        usec = self._environ.get("WATCHDOG_USEC", "")
        pid = self._environ.get("WATCHDOG_PID", "")
        if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
            return None
        return int(usec) / 2_000_000

    def _status(self) -> str:
        sessions = len(self._broker.sessions)
        return f"{sessions} connection{'' if sessions == 1 else 's'}"

    def notify(self, message: str) -> None:
        """
        Send one notify message; never blocks, never fails the broker.
        """
        if self._socket is None:
            return
        try:
            self._socket.sendto(message.encode("utf-8"), self._address)
        except OSError as e:
            self.log.warn("systemd notify to {address} failed: {problem}", address=self._address, problem=e)

    def stopService(self) -> None:
        Service.stopService(self)
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops.clear()
        self.notify(f"STOPPING=1\nSTATUS=stopping, {self._status()}")
        if self._socket is not None:
            self._socket.close()
            self._socket = None
