"""Reaching a dask.distributed scheduler (``--dask ADDRESS``) within a bounded time.

``distributed.Client`` alone can wait without end on something that accepts the connection
and never answers (more than 600 s were seen), fails with a traceback on ``tls://`` without a
TLS configuration, and on failure its clean-up prints an "Exception ignored" report after
another 40 s. So before any ``Client`` is made, :func:`check_scheduler` checks the address
(exit 2 when it is not one) and asks the server who it is — connection, handshake and answer
together bounded by :data:`DASK_CONNECT_TIMEOUT`, in a thread of its own that is abandoned
if it overruns. Anything but a scheduler's answer is exit 4 (backend unavailable), one line.
"""

from __future__ import annotations

import asyncio
import threading

from .errors import BackendError, UsageError

#: Seconds that connecting to the scheduler, its handshake and its answer may take in all.
DASK_CONNECT_TIMEOUT = 20.0


def check_address(address: str) -> None:
    """Refuse what is not a dask address (``[SCHEME://]HOST:PORT``, a scheme dask knows).

    Raises
    ------
    UsageError
    """
    from distributed.comm import registry
    from distributed.comm.addressing import parse_address, parse_host_port

    def bad(why: str) -> UsageError:
        return UsageError(f"--dask {address!r}: not a scheduler address ({why}; e.g. "
                          "tcp://HOST:8786)")

    try:
        scheme, location = parse_address(address)
    except (ValueError, TypeError) as exc:
        raise bad(str(exc)) from None
    if scheme not in registry.backends:
        raise bad(f"unknown scheme {scheme!r}; dask knows {', '.join(sorted(registry.backends))}")
    if scheme == "inproc":
        return
    try:
        host, port = parse_host_port(location)
    except (ValueError, TypeError) as exc:
        raise bad(str(exc) or "HOST:PORT expected") from None
    if not host or any(c.isspace() for c in host) or port is None or not 0 < int(port) < 65536:
        raise bad("HOST:PORT expected, with a port from 1 to 65535")


def check_scheduler(address: str, timeout: float | None = None) -> None:
    """Ask the server at ``address`` for its identity; return when a scheduler answers.

    Raises
    ------
    UsageError
        ``address`` is not an address.
    BackendError
        Nothing answered within ``timeout`` seconds (default :data:`DASK_CONNECT_TIMEOUT`),
        the connection or handshake failed, or what answered is not a scheduler.
    """
    check_address(address)
    timeout = DASK_CONNECT_TIMEOUT if timeout is None else timeout
    box: dict = {}

    def ask() -> None:
        try:
            box["reply"] = asyncio.run(asyncio.wait_for(_identity(address, timeout), timeout))
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            box["error"] = exc

    thread = threading.Thread(target=ask, name="ncanalyze-dask-probe", daemon=True)
    thread.start()
    thread.join(timeout + 1.0)

    def unavailable(why: str) -> BackendError:
        return BackendError(f"--dask {address}: no dask scheduler there ({why})")

    if thread.is_alive() or isinstance(box.get("error"), (asyncio.TimeoutError, TimeoutError)):
        raise unavailable(f"no answer within {timeout:g} s")
    if isinstance(box.get("error"), _NotDask):
        raise unavailable("what answered does not speak dask's protocol")
    if "error" in box:
        exc = box["error"]
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise unavailable(text[:300])
    reply = box.get("reply")
    if not isinstance(reply, dict) or reply.get("type") != "Scheduler":
        raise unavailable("what answered is not a dask scheduler")


async def _identity(address: str, timeout: float):
    from distributed.comm import connect
    from distributed.security import Security

    try:
        # connect() already reads the server's handshake; read() its identity.
        comm = await connect(address, timeout=timeout,
                             **Security().get_connection_args("client"))
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()
    except _UNDECODABLE as exc:
        raise _NotDask() from exc


class _NotDask(Exception):
    """The server answered with bytes dask cannot decode (another protocol, or garbage:
    dask may try to allocate the lengths they declare, exabytes, and fail)."""


#: What decoding a reply that is not dask's framing or msgpack raises (OSError, timeouts and
#: configuration errors such as TLS without a context are reported as they are).
_UNDECODABLE = (ValueError, MemoryError, OverflowError, KeyError, IndexError)
