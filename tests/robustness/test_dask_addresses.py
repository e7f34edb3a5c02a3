"""``--dask ADDRESS`` where no scheduler answers (issue 16 item 6, docs/RELIABILITY.md):
something that is not a scheduler listening, a socket that never answers, ``tls://`` without
a TLS configuration, ``ucx://`` without UCX, a malformed address. The whole handshake is
bounded; each ends with one line and a documented exit code (4: backend unavailable,
2: not an address), never a traceback or an "Exception ignored" report.

The connection limit is lowered for the test (``scheduler.DASK_CONNECT_TIMEOUT``); each
command runs in a thread the test waits on, so a hang fails it instead of stopping the suite.
"""

from __future__ import annotations

import http.server
import socket
import threading

import pytest

from tests.conftest import run_cli
from tests.factories import valid_members, write_h5

pytest.importorskip("distributed")


@pytest.fixture
def run(tmp_path, monkeypatch):
    from ncanalyze import scheduler

    monkeypatch.setattr(scheduler, "DASK_CONNECT_TIMEOUT", 2.0)
    return write_h5(tmp_path / "run.h5", valid_members())


def _bounded(*args, limit=60):
    box = {}
    worker = threading.Thread(target=lambda: box.setdefault("r", run_cli(*args)), daemon=True)
    worker.start()
    worker.join(limit)
    assert "r" in box, f"ncanalyze {' '.join(map(str, args))} did not end in {limit} s"
    return box["r"]


@pytest.fixture
def silent_server():
    """A TCP socket that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held, stop = [], threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue
    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    server.close()


class _QuietHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # this process's stderr is what the test reads
        pass


@pytest.fixture
def http_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _one_line(result, code):
    assert result.exit_code == code, (result.exit_code, result.stderr)
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("ncanalyze: error: "), \
        result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr
    return result.stderr


@pytest.mark.parametrize("scheme", ["tcp://", "", "tls://"])
def test_a_socket_that_never_answers(run, silent_server, scheme):
    line = _one_line(_bounded("metrics", run, "--dask", scheme + silent_server, "-q"), 4)
    assert "dask scheduler" in line and silent_server in line


def test_an_http_server_is_not_a_scheduler(run, http_server):
    line = _one_line(_bounded("metrics", run, "--dask", f"tcp://{http_server}", "-q"), 4)
    assert "dask scheduler" in line


def test_ucx_without_ucx(run, silent_server):
    _one_line(_bounded("metrics", run, "--dask", f"ucx://{silent_server}", "-q"), 4)


@pytest.mark.parametrize("address", ["not an address", "tcp://", "bogus://x:1",
                                     "tcp://127.0.0.1:99999"])
def test_a_malformed_address(run, address):
    _one_line(_bounded("metrics", run, "--dask", address, "-q"), 2)


def test_a_bad_address_in_a_real_process_prints_one_line(run):
    # A Client that failed used to print an "Exception ignored" report when collected.
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    out = subprocess.run([sys.executable, "-m", "ncanalyze", "metrics", str(run), "--dask",
                          "not an address", "-q"], capture_output=True, text=True, timeout=120,
                         env=env)
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and "Exception ignored" not in out.stderr, out.stderr


@pytest.fixture
def garbage_server():
    """A TCP server that answers every connection with bytes that are not dask's protocol
    (a frame count and lengths of exabytes: dask tries to allocate them)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    stop = threading.Event()

    def serve():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn = server.accept()[0]
            except OSError:
                continue
            conn.sendall(b"\xff" * 4096)
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(5)
    server.close()


def test_a_server_speaking_another_protocol_is_named_so(run, garbage_server):
    line = _one_line(_bounded("metrics", run, "--dask", f"tcp://{garbage_server}", "-q"), 4)
    assert "does not speak dask's protocol" in line, line
    assert "EiB" not in line and "allocate" not in line, line
