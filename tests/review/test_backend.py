"""FiftyOne's own mongod is a known quantity: its "oldest supported major version" notice is
not printed on review commands, while every other message of FiftyOne's database module (and
the notice for a MongoDB the user configured) still reaches the user."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from annotator.review import backend
from tests.conftest import REPO

NOTICE = "You are running the oldest supported major version of MongoDB. Please refer to ..."
OTHER = "Your MongoDB feature compatibility is greater than your server version."


@pytest.fixture
def database_logger() -> Any:
    logger = logging.getLogger(backend.DATABASE_LOGGER)
    filters = list(logger.filters)
    yield logger
    logger.filters[:] = filters


def test_only_the_bundled_mongod_notice_is_filtered(database_logger: Any,
                                                    caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    backend.trust_bundled_database()
    backend.trust_bundled_database()  # once is enough
    assert sum(isinstance(f, backend._BundledNotice) for f in database_logger.filters) == 1
    with caplog.at_level(logging.WARNING, logger=backend.DATABASE_LOGGER):
        database_logger.warning(NOTICE)
        database_logger.warning(OTHER)
        database_logger.error("Operation failed while updating database's feature compatibility")
    assert [r.getMessage() for r in caplog.records] == [
        OTHER, "Operation failed while updating database's feature compatibility"]  # fmt: skip


@pytest.mark.slow
@pytest.mark.xdist_group("fiftyone")
def test_review_push_on_the_bundled_mongod_prints_no_notice(fo: Any, build: Any, store: Any,
                                                           db_url: str, tmp_path: Path) -> None:  # fmt: skip
    """FiftyOne starts its own mongod here (no database URI), as on a user's machine."""
    b = build("classification", 2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIFTYONE_DATABASE")}
    env["FIFTYONE_DATABASE_DIR"] = str(tmp_path / "fo")
    result = subprocess.run(
        [sys.executable, "-m", "annotator", "--db", db_url, "review", "push", b.name],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "2 added" in result.stdout
    assert "oldest supported" not in result.stdout + result.stderr
