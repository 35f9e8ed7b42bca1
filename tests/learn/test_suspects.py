"""Suspect labels: a flipped label is found (worst first, with the true class suggested) and
a right one is not; fixing the label or confirming it clears the flag and keeps it as history;
a new run supersedes the open flags; a detection dataset without predictions and missing
embeddings are refused clearly (suspect boxes: test_suspects_boxes.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from annotator.store import labels
from annotator.store.datasets import get_dataset
from annotator.store.db import Store
from annotator.store.embeddings import write_embeddings
from annotator.store.models import Dataset, Image
from annotator.store.suspects import flag_history
from tests.learn.conftest import HUES, MakeColoured, label_files

FLIPPED = {"red_003.png": "green", "blue_005.png": "red"}


def _embed_by_truth(
    store: Store, ds_id: int, truth: dict[str, str], model: str = "mobilenet_v2"
) -> None:
    """Vectors that tell the true classes apart (a cluster per class, with noise)."""
    rng = np.random.default_rng(0)
    centres = {name: rng.normal(size=16) * 3 for name in HUES}
    with store.session() as s:
        images = s.execute(select(Image.id, Image.path).where(Image.dataset_id == ds_id)).all()
        vectors = [(i, centres[truth[Path(p).name]] + rng.normal(size=16)) for i, p in images]
        write_embeddings(s, model, None, vectors)


def _labelled(
    store: Store, coloured: MakeColoured, task: str = "classification"
) -> tuple[int, dict[str, int]]:
    ds_id, truth = coloured(per_class=12, task=task)
    given = {f: [FLIPPED.get(f, c)] for f, c in truth.items()}
    label_files(store, ds_id, given)
    _embed_by_truth(store, ds_id, truth)
    with store.session() as s:
        ids = {Path(p).name: i for i, p in s.execute(select(Image.id, Image.path))}
    return ds_id, ids


def test_flipped_labels_are_flagged_worst_first_with_the_true_class(
    store: Store, coloured: MakeColoured, run_cli
) -> None:
    _labelled(store, coloured)
    result = run_cli("suspects", "c", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    flags = out["flags"]
    top = {Path(f["path"]).name: f for f in flags[:2]}
    assert set(top) == set(FLIPPED)
    assert top["red_003.png"]["given"] == "green" and top["red_003.png"]["suggested"] == "red"
    assert top["blue_005.png"]["given"] == "red" and top["blue_005.png"]["suggested"] == "blue"
    assert len(flags) <= 4  # the 34 right labels are (nearly) all left alone
    assert [f["score"] for f in flags] == sorted(f["score"] for f in flags)
    assert out["report"]["labelled"] == 36


def test_fixing_or_confirming_clears_the_flag_and_keeps_it(
    store: Store, coloured: MakeColoured, run_cli
) -> None:
    ds_id, ids = _labelled(store, coloured)
    assert run_cli("suspects", "c").exit_code == 0
    with store.session() as s:
        red = next(c.id for c in s.get_one(Dataset, ds_id).classes if c.name == "red")
        labels.assign_class(s, ids["red_003.png"], red, "fixer")
    confirmed = run_cli("suspects", "c", "--confirm", str(ids["blue_005.png"]))
    assert confirmed.exit_code == 0, confirmed.output
    listed = json.loads(run_cli("suspects", "c", "--list", "--json").stdout)["flags"]
    assert not {Path(f["path"]).name for f in listed} & set(FLIPPED)
    with store.session() as s:
        ds = get_dataset(s, "c")
        fixed = flag_history(s, ds, ids["red_003.png"])
        kept = flag_history(s, ds, ids["blue_005.png"])
    assert [(f.resolution, f.cleared_by) for f in fixed] == [("edited", "fixer")]
    assert [(f.resolution, f.cleared_by) for f in kept] == [("confirmed", "tester")]


def test_a_new_run_supersedes_the_open_flags(store: Store, coloured: MakeColoured, run_cli) -> None:
    _, ids = _labelled(store, coloured)
    assert run_cli("suspects", "c").exit_code == 0
    assert run_cli("suspects", "c").exit_code == 0
    runs = {
        f["run"] for f in json.loads(run_cli("suspects", "c", "--list", "--json").stdout)["flags"]
    }
    assert runs == {2}
    with store.session() as s:
        history = flag_history(s, get_dataset(s, "c"), ids["red_003.png"])
    assert [f.resolution for f in history] == ["superseded", None]


def test_multilabel_flags_a_wrong_class(store: Store, coloured: MakeColoured, run_cli) -> None:
    _labelled(store, coloured, task="multilabel")
    result = run_cli("suspects", "c", "--json")
    assert result.exit_code == 0, result.output
    names = [Path(f["path"]).name for f in json.loads(result.stdout)["flags"]]
    assert set(FLIPPED) <= set(names[:4])


@pytest.mark.parametrize(
    ("task", "message"),
    [("detection", "no model run with predicted boxes"),
     ("classification", "has no embeddings of 'mobilenet_v2'")],
)  # fmt: skip
def test_refusals_are_one_error_line(
    coloured: MakeColoured, run_cli, task: str, message: str
) -> None:
    coloured(per_class=3, task=task)
    result = run_cli("suspects", "c")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.output
