"""Serving the FiftyOne App on a mirror: on 127.0.0.1 unless another address is asked for, with
the URL to open and the `ssh -L` line that reaches it from another machine. Refuses a port that
is taken before FiftyOne starts its server. FiftyOne is imported lazily."""

from __future__ import annotations

import contextlib
import getpass
import io
import socket
from typing import Any
from urllib.parse import quote

from annotator.errors import ConflictError, NotFoundError
from annotator.review import backend as fob

DEFAULT_PORT = 5151
DEFAULT_ADDRESS = "127.0.0.1"
ANY_ADDRESS = ("0.0.0.0", "::", "")


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
    """Block until interrupted (Ctrl-C), then close the App."""
    try:
        session.wait(-1)
    except KeyboardInterrupt:
        pass
    finally:
        session.close()
