"""Run ncanalyze commands in a long-lived child process, each under a timeout.

Tests of hostile files must survive what they test for: a command that hangs (HDF5 opening a
FIFO) or crashes the interpreter (a segfault inside HDF5). Starting ``python -m ncanalyze``
for every command costs ~1 s of imports; this worker imports once and runs each command
in-process with typer's CliRunner, while the test process waits on its answer with a
timeout. A hang or a crash fails the test and the worker is replaced.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class CommandHung(AssertionError):
    """A command did not answer within its timeout, or killed its process."""


class Worker:
    """A child Python process that runs ``ncanalyze ARGS`` on request."""

    def __init__(self):
        self._proc = None

    def _start(self):
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self._proc = subprocess.Popen(
            [sys.executable, "-u", "-c", "from tests.cli_worker import serve; serve()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, env=env, cwd=str(ROOT))

    def run(self, *args, timeout: float = 60.0) -> tuple[int, str, str]:
        """Run one command; returns (exit code, stdout, stderr)."""
        if self._proc is None or self._proc.poll() is not None:
            self._start()
        proc = self._proc
        proc.stdin.write(json.dumps([str(a) for a in args]) + "\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        line = proc.stdout.readline() if ready else ""
        if not line:
            self.close()
            what = "hung" if not ready else f"crashed (exit {proc.returncode})"
            raise CommandHung(f"ncanalyze {' '.join(map(str, args))} {what}")
        answer = json.loads(line)
        return answer["rc"], answer["stdout"], answer["stderr"]

    def close(self):
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            self._proc.stdin.close()
            self._proc.stdout.close()
            self._proc = None


def serve():  # pragma: no cover - runs in the child
    """Answer one JSON line per request line read from stdin (warnings go to its stderr)."""
    import warnings

    from typer.testing import CliRunner

    from ncanalyze.cli import app

    for line in sys.stdin:
        args = json.loads(line)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = CliRunner().invoke(app, args)
        rc = result.exit_code
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            rc, stderr = 99, f"{type(result.exception).__name__}: {result.exception}"
        else:
            stderr = result.stderr
        stderr += "".join(f"{w.category.__name__}: {w.message}\n" for w in caught)
        sys.stdout.write(json.dumps({"rc": rc, "stdout": result.stdout,
                                     "stderr": stderr}) + "\n")
        sys.stdout.flush()
