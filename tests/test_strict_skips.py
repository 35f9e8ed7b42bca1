"""Under `CI=true` the suite hides nothing it skips: a skip, a skipif and an importorskip fail
the run with their reason; on a developer's box (CI unset or false) they stay skips. Runs a
small suite in a subprocess with tests/strict_skips.py loaded, as tests/conftest.py loads it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

SUITE = """
import pytest

def test_skipped():
    pytest.skip("needs Debian's chromium")

@pytest.mark.skipif(True, reason="no PostgreSQL server")
def test_skipped_if():
    pass

@pytest.mark.xfail(reason="known")
def test_expected_failure():
    assert False

def test_passes():
    pass
"""


def run_suite(
    tmp_path: Path, ci: str | None, source: str = SUITE
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_small.py").write_text(source)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = str(REPO)
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.strict_skips", "-p", "no:cacheprovider",
         "-p", "no:xdist", "-q", "-rA", str(tmp_path)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip


def test_under_ci_a_skip_fails_and_says_why(tmp_path: Path) -> None:
    result = run_suite(tmp_path, "true")
    assert result.returncode == 1, result.stdout
    assert "FAILED test_small.py::test_skipped" in result.stdout
    assert "ERROR test_small.py::test_skipped_if" in result.stdout
    assert "skipped under CI=true: needs Debian's chromium" in result.stdout
    assert "skipped under CI=true: no PostgreSQL server" in result.stdout
    assert "XFAIL test_small.py::test_expected_failure" in result.stdout
    assert "PASSED test_small.py::test_passes" in result.stdout


def test_under_ci_a_module_skipped_at_import_fails(tmp_path: Path) -> None:
    source = 'import pytest\npytest.importorskip("no_such_module_for_this_test")\n'
    result = run_suite(tmp_path, "1", source)
    assert result.returncode != 0, result.stdout
    assert "skipped under CI=1: could not import 'no_such_module_for_this_test'" in result.stdout


@pytest.mark.parametrize("ci", [None, "", "false"])
def test_on_a_developers_box_a_skip_stays_a_skip(tmp_path: Path, ci: str | None) -> None:
    result = run_suite(tmp_path, ci)
    assert result.returncode == 0, result.stdout
    assert "SKIPPED [1] test_small.py:5: needs Debian's chromium" in result.stdout
    assert "no PostgreSQL server" in result.stdout and "2 skipped" in result.stdout


def test_the_suite_itself_fails_under_ci_without_postgresql(tmp_path: Path) -> None:
    """The real conftest loads the plugin: the engine tests, with no server, fail under CI."""
    env = {**os.environ, "CI": "true", "ANNOTATOR_TEST_PG_URL": ""}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-q",
         "-x", "tests/store/test_postgres.py"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout
    assert "skipped under CI=true: no PostgreSQL server" in result.stdout
