"""Serving the FiftyOne App on a mirror: on 127.0.0.1 unless another address is asked for, with
the URL to open and the `ssh -L` line that reaches it from another machine. Refuses a port that
is taken before FiftyOne starts its server. Ctrl-C and SIGTERM stop the App at once: its server
processes are ended here (FiftyOne's own shutdown waits out its web server's grace period, and
a SIGTERM left that server running), then FiftyOne's database service is let go. FiftyOne is
imported lazily."""

from __future__ import annotations

import contextlib
import getpass
import io
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any
from urllib.parse import quote

from annotator.errors import ConflictError, NotFoundError
from annotator.review import backend as fob

DEFAULT_PORT = 5151
DEFAULT_ADDRESS = "127.0.0.1"
ANY_ADDRESS = ("0.0.0.0", "::", "")
SERVER_GRACE_S = 0.3  # the App server's time to exit on SIGTERM before it is killed
STOP_BUDGET_S = 1.2  # the most a stop waits (for FiftyOne's own mongod to shut down)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def is_loopback(address: str) -> bool:
    return address in ("127.0.0.1", "localhost", "::1") or address.startswith("127.")


def app_url(fo_name: str, port: int = DEFAULT_PORT, address: str = DEFAULT_ADDRESS) -> str:
    """Where the App shows dataset `fo_name`."""
    host = DEFAULT_ADDRESS if address in ANY_ADDRESS else address
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/datasets/{quote(fo_name)}"


def ssh_hint(port: int = DEFAULT_PORT) -> str:
    """The command that forwards the App's port from this machine to another one."""
    try:
        user = getpass.getuser()
    except Exception:  # no user database entry (containers)
        user = "user"
    return f"ssh -N -L {port}:127.0.0.1:{port} {user}@{socket.getfqdn() or 'host'}"


def check_port(address: str, port: int) -> None:
    """Refuse a port another program holds (FiftyOne would fail quietly)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError as exc:
            raise ConflictError(
                f"cannot serve the App on {address}:{port} ({exc.strerror}): pick another --port"
            ) from exc


def serve(fo_name: str, port: int = DEFAULT_PORT, address: str = DEFAULT_ADDRESS) -> Any:
    """Start the App server on the FiftyOne dataset `fo_name`; returns FiftyOne's session."""
    fo = fob.require_fiftyone()
    if not fo.dataset_exists(fo_name):
        raise NotFoundError(f"no FiftyOne dataset {fo_name!r}: push it first")
    check_port(address, port)
    fods = fo.load_dataset(fo_name)
    # its banner and its own ssh advice (ours names the App's port on both ends)
    with fob.quiet(), contextlib.redirect_stdout(io.StringIO()):
        return fo.launch_app(fods, port=port, address=address, remote=True, auto=False)


def wait(session: Any) -> None:
    """Block until interrupted (Ctrl-C, or SIGTERM inside `stopping`)."""
    with contextlib.suppress(KeyboardInterrupt):
        session.wait(-1)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def stopping() -> Iterator[None]:
    """Around serving the App: SIGTERM stops it as Ctrl-C does, an interrupt ends the block
    quietly, and on the way out the App and every process it started are stopped (signals are
    ignored meanwhile: that takes about a second at most). Ctrl-C stops it even when the process
    was started with SIGINT ignored (a background job of a shell without job control), where
    Python would otherwise leave it ignored."""
    main = threading.current_thread() is threading.main_thread()
    handlers = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS} if main else {}
    if main:
        signal.signal(signal.SIGTERM, _interrupt)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    except KeyboardInterrupt:
        pass
    finally:
        for sig in handlers:
            signal.signal(sig, signal.SIG_IGN)
        try:
            shutdown()
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def shutdown() -> None:
    """Stop the App server this process started, close FiftyOne's session and let go of the
    database service FiftyOne started for it, within STOP_BUDGET_S. Nothing to do when FiftyOne
    was never loaded."""
    if "fiftyone" not in sys.modules:
        return
    deadline = time.monotonic() + STOP_BUDGET_S
    # FiftyOne's session says what it does when its server goes: that is no news here
    with contextlib.redirect_stdout(io.StringIO()):
        fob.close_session_client()
        database = fob.leave_database()  # its mongod shuts down while the server stops
        fob.stop_app_servers(grace=SERVER_GRACE_S)
        sys.modules["fiftyone"].close_app()
        fob.finish_database(database, deadline - time.monotonic())
