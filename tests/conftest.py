"""Shared fixtures: a temporary database per test, synthetic images, a CLI runner. The user's own
databases, config and FiftyOne datasets are kept out through the environment. Under `CI=true`
a skipped test fails (tests/strict_skips.py): a missing PostgreSQL or chromium is reported,
never hidden."""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.strict_skips import (  # noqa: F401  (hooks: pytest finds them by name)
    pytest_make_collect_report,
    pytest_report_header,
    pytest_runtest_makereport,
)

_FO_DIR = tempfile.mkdtemp(prefix="annotator-fo-")
os.environ.setdefault("FIFTYONE_DATABASE_DIR", _FO_DIR)


def _private_fiftyone_database(folder: Path) -> None:
    """FiftyOne attaches to any database service already running on the machine, whatever its
    folder: the tests get a mongod of their own on a free port, so they never see (or write to)
    a user's FiftyOne datasets."""
    spec = importlib.util.find_spec("fiftyone")
    if spec is None or spec.origin is None or "FIFTYONE_DATABASE_URI" in os.environ:
        return
    mongod = Path(spec.origin).parent / "db" / "bin" / "mongod"
    if not mongod.exists():
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    (folder / "db").mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [str(mongod), "--dbpath", str(folder / "db"), "--port", str(port), "--bind_ip",
         "127.0.0.1", "--nounixsocket", "--logpath", str(folder / "mongod.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    atexit.register(_stop_and_remove, proc, folder)
    os.environ["FIFTYONE_DATABASE_URI"] = f"mongodb://127.0.0.1:{port}"


def _stop_and_remove(proc: subprocess.Popen[bytes], folder: Path) -> None:
    """At exit: stop the tests' mongod and remove its files (some 300 MB a run)."""
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    shutil.rmtree(folder, ignore_errors=True)


_private_fiftyone_database(Path(_FO_DIR))
os.environ["FIFTYONE_DO_NOT_TRACK"] = "true"
os.environ.pop("ANNOTATOR_DB", None)
os.environ["ANNOTATOR_USER"] = "tester"
os.environ.setdefault("ANNOTATOR_CONFIG", str(Path(_FO_DIR) / "no-config.toml"))

PG_BASE_URL = os.environ.get("ANNOTATOR_TEST_PG_URL")
needs_postgres = [
    pytest.mark.postgres,
    pytest.mark.skipif(not PG_BASE_URL, reason="no PostgreSQL server (make test starts one)"),
]
REPO = Path(__file__).resolve().parents[1]
SAMPLE_DATA = REPO / "sample_data"
PEER_DATA = REPO / "tests" / "data" / "peer"  # conformance data, in the repository


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def store(db_url: str) -> Iterator[object]:
    from annotator.store.db import open_store

    st = open_store(db_url)
    yield st
    st.close()


def write_jpeg(path: Path, size: tuple[int, int] = (64, 48), color: tuple[int, int, int] = (200, 30, 30),
               orientation: int | None = None) -> Path:  # fmt: skip
    """A small real JPEG (its bytes unique to `path`); with `orientation`, the EXIF tag is set
    (pixels stored as given)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", size, color)
    extra: dict[str, object] = {"comment": str(path).encode()}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        extra["exif"] = exif.tobytes()
    img.save(path, quality=90, **extra)
    return path


@pytest.fixture
def make_images(tmp_path: Path) -> Callable[..., list[Path]]:
    """make_images(n, folder="imgs") -> n distinct small JPEGs."""

    def make(n: int, folder: str = "imgs", size: tuple[int, int] = (64, 48)) -> list[Path]:
        return [
            write_jpeg(tmp_path / folder / f"img{i:04d}.jpg", size, (i % 256, (i // 256) % 256, 77))
            for i in range(n)
        ]

    return make


@pytest.fixture
def run_cli(db_url: str) -> Callable[..., object]:
    """run_cli("stats", "pets") -> click Result (exit_code, stdout, stderr)."""
    from click.testing import CliRunner

    from annotator.main import cli

    def run(*args: str, input: str | None = None) -> object:
        runner = CliRunner()
        return runner.invoke(cli, ["--db", db_url, *args], input=input, catch_exceptions=False)

    return run


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (mark the module `needs_postgres`)."""
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    assert PG_BASE_URL
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_BASE_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(PG_BASE_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
