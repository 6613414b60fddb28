"""
A Node.js driver script as a child process (the browser tests' Playwright
scripts): one JSON command a line on its stdin, one JSON answer a line
from its stdout, every answer waited for with a timeout.
"""

import json
import queue
import subprocess
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


class ScriptDriver:
    """
    C{node SCRIPT ARGS}, run from the repository's root; its stderr goes to
    C{log_path}, shown when a command fails.
    """

    def __init__(self, script: Path, args: list[str], log_path: Path, timeout: float = 30.0) -> None:
        self.log_path = log_path
        self.timeout = timeout
        self.process = subprocess.Popen(
            ["node", str(script), *args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(log_path, "w"),
            text=True,
            encoding="utf-8",
        )
        # readline() has no timeout: a thread reads, the test waits on a queue.
        self.answers: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.answers.put(line)
        self.answers.put(None)

    def __call__(self, command: str, **arguments) -> dict:
        """
        Run one command and return its answer; fail the test on an error
        answer, a timeout or the script's exit.
        """
        self.process.stdin.write(json.dumps({"do": command, **arguments}) + "\n")
        self.process.stdin.flush()
        try:
            line = self.answers.get(timeout=self.timeout)
        except queue.Empty:
            pytest.fail(f"{command}: no answer in {self.timeout} s\n{self.log_path.read_text()}")
        if line is None:
            self.process.wait(timeout=5)
            pytest.fail(f"{command}: the script exited {self.process.returncode}\n{self.log_path.read_text()}")
        answer = json.loads(line)
        assert answer["ok"], f"{command} {arguments}: {answer}"
        return answer

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write(json.dumps({"do": "quit"}) + "\n")
                self.process.stdin.close()
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
