"""A pytest plugin (loaded by tests/conftest.py): under `CI=true` a skipped test is a failure.
A developer's box may lack PostgreSQL or chromium and the tests that need them say so and skip;
a CI run that skipped them would go green with the engine or the App untested, so there every
skip (a `skip`, a `skipif`, an `importorskip`, at collection or in a test) fails, naming its
reason. An expected failure (`xfail`) is not a skip and stays as it is."""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest

FALSE = ("", "0", "false", "no", "off")


def strict() -> bool:
    """Whether this run is a CI run, where nothing may be skipped."""
    return os.environ.get("CI", "").strip().lower() not in FALSE


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _fail(report: pytest.TestReport | pytest.CollectReport) -> None:
    report.outcome = "failed"
    report.longrepr = (
        f"skipped under CI={os.environ.get('CI')}: {_skip_reason(report)}\n"
        "a CI run must not skip what the suite needs: provide it (make test starts PostgreSQL "
        "and installs chromium as root), or unset CI on a developer's box"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Generator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and strict():
        _fail(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and strict():
        _fail(report)


def pytest_report_header(config: pytest.Config) -> str | None:
    if strict():
        return f"CI={os.environ.get('CI')}: a skipped test fails the run"
    return None
