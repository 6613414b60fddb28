"""
@stomp/stompjs run in Node by C{tests/js/stompjs_client.mjs}: the script
as a child process, one JSON object a line.
"""

import json
import queue
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "js" / "stompjs_client.mjs"
# Above the script's own overall timeout (20 s), which reports better.
PROCESS_TIMEOUT = 30.0


def find_node() -> str:
    """
    The node binary, once C{make assets} has installed the client.
    """
    path = shutil.which("node")
    assert path, "node is missing (Node.js 20 or later)"
    assert (ROOT / "node_modules" / "@stomp" / "stompjs").is_dir(), "node_modules is missing: run make assets"
    assert (ROOT / "node_modules" / "ws").is_dir(), "node_modules is missing: run make assets"
    return path


class Script:
    """
    The stompjs script as a child process: one JSON object a line on its
    stdout, read by a thread so that waits have timeouts.
    """

    def __init__(self, node: str, *args: str) -> None:
        self.process = subprocess.Popen(
            [node, str(SCRIPT), *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def next(self, timeout: float = PROCESS_TIMEOUT) -> dict:
        """
        The next JSON line; fails on the script's error or exit.
        """
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no output from {SCRIPT.name} within {timeout} s")
        if line is None:
            self.process.wait(timeout=5)
            pytest.fail(f"{SCRIPT.name} exited with {self.process.returncode}: {self.process.stderr.read()}")
        result = json.loads(line)
        assert "error" not in result, result["error"]
        return result

    def result(self) -> dict:
        """
        The last line, once the script has exited 0.
        """
        result = self.next()
        assert self.process.wait(timeout=PROCESS_TIMEOUT) == 0, self.process.stderr.read()
        return result

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        # The reading thread ends at the pipe's end, before it is closed.
        self._reader.join(timeout=5)
        self.process.stdout.close()
        self.process.stderr.close()
