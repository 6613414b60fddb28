"""
Real STOMP clients for tests: stomp.py connections that collect what they
receive.
"""

import time
import uuid

import stomp


class Collector(stomp.ConnectionListener):
    """
    Collects what a stomp.py connection receives.
    """

    def __init__(self) -> None:
        self.messages = []
        self.errors = []
        self.receipts = []
        self.disconnected = False
        self.connected = []

    def on_connected(self, frame):
        self.connected.append(frame)

    def on_message(self, frame):
        self.messages.append(frame)

    def on_error(self, frame):
        self.errors.append(frame)

    def on_receipt(self, frame):
        self.receipts.append(frame.headers["receipt-id"])

    def on_disconnected(self):
        self.disconnected = True

    def bodies(self) -> list:
        """
        The bodies of the messages received so far, in order.
        """
        return [m.body for m in self.messages]

    def wait_for_receipt(self, receipt: str) -> None:
        assert self.wait_for(lambda: receipt in self.receipts), f"no receipt {receipt}"

    def wait_for_bodies(self, count: int = 1, quiet: float = 0.1) -> list:
        """
        Wait for C{count} messages, then C{quiet} seconds more for any that
        should not come; return the bodies of all received so far.
        """
        assert self.wait_for(lambda: len(self.messages) >= count), f"{len(self.messages)} of {count} messages"
        time.sleep(quiet)
        return self.bodies()

    def wait_for(self, predicate, timeout: float = 5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return predicate()


def stomp_client(
    port: int,
    version: str = "1.2",
    heartbeats=(0, 0),
    login="guest",
    passcode="guest",
    connect_headers=None,
    host: str = "127.0.0.1",
    **kwargs,
):
    """
    A stomp.py connection to C{host}:C{port}, connected (with
    C{connect_headers} on its CONNECT), with a L{Collector} as
    C{conn.collector}.
    """
    hosts = [(host, port)]
    cls = {"1.0": stomp.Connection10, "1.1": stomp.Connection11, "1.2": stomp.Connection12}[version]
    if version == "1.0":
        conn = cls(hosts, **kwargs)
    else:
        conn = cls(hosts, heartbeats=heartbeats, **kwargs)
    listener = Collector()
    conn.set_listener("collector", listener)
    conn.connect(login, passcode, wait=True, headers=connect_headers)
    conn.collector = listener
    return conn


def subscribe_with_receipt(conn, destination: str, id: str = "s", ack: str = "auto", **headers) -> None:
    """
    SUBSCRIBE C{conn} and wait for the broker's RECEIPT.
    """
    receipt = f"sub-{uuid.uuid4().hex[:8]}"
    conn.subscribe(destination, id=id, ack=ack, headers=headers, receipt=receipt)
    conn.collector.wait_for_receipt(receipt)


def disconnect_all(connections) -> None:
    """
    Disconnect every connection still connected, ignoring those that broke.
    """
    for conn in connections:
        try:
            if conn.is_connected():
                conn.disconnect()
        except Exception:
            pass
