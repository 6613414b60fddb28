"""
Network namespaces for tests that need a network of their own (multicast
discovery): two namespaces joined by a veth pair, with multicast routed
over it and nowhere else. Nothing touches the host's own interfaces.
"""

import os
import subprocess

import pytest


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


class VethPair:
    """
    Namespaces C{names[0]} and C{names[1]}, reachable from each other at
    C{addresses[0]} and C{addresses[1]}.
    """

    def __init__(self, tag: str) -> None:
        self.names = (f"stompd-{tag}-a", f"stompd-{tag}-b")
        self.addresses = ("10.213.77.1", "10.213.77.2")
        links = (f"st{tag[-6:]}a", f"st{tag[-6:]}b")
        try:
            for name in self.names:
                _ip("netns", "add", name)
            _ip("link", "add", links[0], "netns", self.names[0], "type", "veth", "peer", "name", links[1], "netns", self.names[1])
            for name, link, address in zip(self.names, links, self.addresses):
                _ip("-n", name, "link", "set", "lo", "up")
                _ip("-n", name, "addr", "add", f"{address}/24", "dev", link)
                _ip("-n", name, "link", "set", link, "up")
                _ip("-n", name, "route", "add", "224.0.0.0/4", "dev", link)
        except (subprocess.CalledProcessError, FileNotFoundError) as e:
            self.remove()
            detail = getattr(e, "stderr", b"") or str(e)
            raise PermissionError(f"cannot create network namespaces: {detail!r}") from None

    def run(self, index: int, *command: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["ip", "netns", "exec", self.names[index], *command], capture_output=True, text=True, timeout=timeout
        )

    def remove(self) -> None:
        for name in self.names:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


def veth_pair(tag: str) -> VethPair:
    """
    A L{VethPair}, or a skip where namespaces cannot be made (not root);
    under CI, which runs as root, a failure.
    """
    try:
        return VethPair(tag)
    except PermissionError as e:
        if os.environ.get("CI"):
            pytest.fail(str(e))
        pytest.skip(str(e))
