"""The team commands as a user runs them: `overlap` marks a reproducible sample, `agreement`
prints (and --json gives) kappa and alpha per class and each annotator's agreement with the
consensus, `consensus` writes the majority and reports ties, `stats` shows per-annotator figures;
bad input is one error line. SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from annotator.main import cli
from annotator.store import labels
from annotator.store.datasets import create_dataset
from annotator.store.db import open_store
from annotator.store.models import Image, LabelClass, OverlapImage
from tests.conftest import needs_postgres

ENGINES = ["sqlite", pytest.param("postgresql", marks=needs_postgres)]
Run = Callable[..., Result]


@pytest.fixture(params=ENGINES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 't.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def run(url: str, monkeypatch: pytest.MonkeyPatch) -> Run:
    monkeypatch.setenv("ANNOTATOR_USER", "lead")

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, ["--db", url, *args])

    return invoke


def _dataset(url: str, n: int) -> None:
    store = open_store(url)
    with store.session() as s:
        ds = create_dataset(s, "pets", "classification", ["cat", "dog"])
        s.add_all(Image(dataset_id=ds.id, path=f"i{i:03d}.jpg", sha256=f"{i:064x}", width=9,
                        height=9, size_bytes=1) for i in range(n))  # fmt: skip
        s.commit()
    store.close()


def _vote(url: str, votes: dict[str, list[str]]) -> list[int]:
    """Each annotator's class per overlap image, in image order."""
    store = open_store(url)
    with store.session() as s:
        ids = list(s.scalars(select(OverlapImage.image_id).order_by(OverlapImage.image_id)))
        cls = {c.name: c.id for c in s.scalars(select(LabelClass))}
        for who, given in votes.items():
            for image, name in zip(ids, given, strict=False):
                labels.assign_class(s, image, cls[name], who)
    store.close()
    return ids


def _marked(url: str) -> list[int]:
    store = open_store(url)
    with store.session(readonly=True) as s:
        found = list(s.scalars(select(OverlapImage.image_id).order_by(OverlapImage.image_id)))
    store.close()
    return found


def test_overlap_marks_a_reproducible_sample(url: str, run: Run) -> None:
    _dataset(url, 40)
    result = run("overlap", "pets", "--fraction", "0.1", "--annotators", "2", "--seed", "5")
    assert result.exit_code == 0, result.output
    assert "marked 4 images of 40 for 2 annotators" in result.output
    first = _marked(url)
    again = run("overlap", "pets", "--fraction", "0.1", "--annotators", "2", "--seed", "5")
    assert "marked 0 images" in again.output and _marked(url) == first


@pytest.mark.parametrize(("args", "says"), [
    (["--fraction", "0"], "--fraction 0.0"),
    (["--fraction", "0.5", "--annotators", "1"], "at least 2 people"),
])  # fmt: skip
def test_overlap_refuses_bad_numbers_in_one_line(url: str, run: Run, args: list[str],
                                                 says: str) -> None:  # fmt: skip
    _dataset(url, 3)
    result = run("overlap", "pets", *args)
    assert result.exit_code == 2 and says in result.output
    assert "Traceback" not in result.output


def test_agreement_and_consensus_as_a_user_reads_them(url: str, run: Run) -> None:
    _dataset(url, 4)
    run("overlap", "pets", "--fraction", "1", "--annotators", "2", "--seed", "1")
    ids = _vote(url, {"ann": ["cat", "dog", "cat", "dog"], "bob": ["cat", "dog", "dog", "dog"]})
    out = json.loads(run("agreement", "pets", "--json").output)
    assert out["images"] == 4 and out["annotators"] == ["ann", "bob"]
    assert out["overall"]["cohen_kappa"] == pytest.approx(0.5)
    assert set(out["per_class"]) == {"cat", "dog"}
    text = run("agreement", "pets").output
    assert "cohen_kappa" in text and "0.500" in text and "agreement with the consensus" in text
    result = run("consensus", "pets")
    assert result.exit_code == 0, result.output
    assert "consensus written on 3" in result.output and "1 ties" in result.output
    assert "votes tie: cat 1, dog 1" in result.output
    stats: dict[str, Any] = json.loads(run("stats", "pets", "--json").output)
    assert stats["classes"] == {"cat": 1, "dog": 2}  # written by consensus; votes apart
    assert stats["review"]["vote"] == 8 and stats["flagged"] == 1
    people = {p["annotator"]: p for p in stats["annotators"]}
    assert people["ann"]["images"] == 4 and people["lead"]["changes"] == 6  # 3 labels, 3 status
    assert "per annotator" in run("stats", "pets").output
    assert len(ids) == 4


def test_who_shows_what_each_person_holds_and_their_pace(url: str, run: Run) -> None:
    from annotator.store import leases

    _dataset(url, 5)
    store = open_store(url)
    with store.session() as s:
        ids = list(s.scalars(select(Image.id).order_by(Image.id)))
        leases.claim(s, 1, ids[:2], "alice")
        cat = s.scalar(select(LabelClass.id).where(LabelClass.name == "cat"))
        assert cat is not None
        labels.assign_class(s, ids[4], cat, "bob")
    store.close()
    result = run("who", "pets", "--json")
    assert result.exit_code == 0, result.output
    rows = {r["holder"]: r for r in json.loads(result.output)}
    assert (rows["alice"]["scope"], rows["alice"]["images"]) == ("label", 2)
    assert rows["bob"]["images"] == 0 and rows["bob"]["changes_today"] >= 1
    table = run("who", "pets")
    assert table.exit_code == 0 and "alice" in table.output and "bob" in table.output
