"""Training on the dataset's own labels: embed then train from the command line, the proposals
stored as a model run (pending, scored, with uncertainty), refusals (too few labels, no
embeddings), a second train replacing the first one's pending proposals but never an
accepted label, multilabel, evaluate on the trained run, and a train killed between batches."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator.errors import NotFoundError
from annotator.learn import train as train_module
from annotator.learn.embed import EmbedOptions, embed
from annotator.learn.train import TrainOptions, TrainReport, latest_accuracy, train
from annotator.store import predictions as store_predictions
from annotator.store.db import Store
from annotator.store.labels import accept_as_label
from annotator.store.models import Annotation, Dataset, Image, ModelRun, RunImage
from annotator.store.predictions import ImagePredictions
from tests.learn.conftest import COLOUR, MakeColoured, label_files

FIRST = {f"{c}_{i:03d}.png": [c] for c in ("red", "green", "blue") for i in range(3)}


def _embed(store: Store, ds_id: int) -> None:
    with store.session() as s:
        embed(s, s.get_one(Dataset, ds_id), EmbedOptions(model=COLOUR, workers=0))


def _train(store: Store, ds_id: int, **options: Any) -> TrainReport:
    with store.session() as s:
        return train(s, s.get_one(Dataset, ds_id), TrainOptions(embeddings=COLOUR, **options))


def _labels(store: Store, ds_id: int) -> dict[str, list[tuple[str, str, str, int | None]]]:
    """file -> [(class, source, review, run id)] of every label on it."""
    with store.session() as s:
        names = {c.id: c.name for c in s.get_one(Dataset, ds_id).classes}
        files = {i.id: Path(i.path).name for i in s.scalars(select(Image))}
        out: dict[str, list[tuple[str, str, str, int | None]]] = {f: [] for f in files.values()}
        for a in s.scalars(select(Annotation).order_by(Annotation.id)):
            out[files[a.image_id]].append((names[a.class_id], a.source, a.review, a.run_id))
    return out


def test_embed_then_train_from_the_command_line(
    store: Store, coloured: MakeColoured, run_cli: Any
) -> None:
    ds_id, truth = coloured(6)
    label_files(store, ds_id, FIRST)
    result = run_cli("embed", "c", "--model", COLOUR, "--workers", "0")
    assert result.exit_code == 0, result.output
    assert "embedded 18 images" in result.stdout
    result = run_cli("train", "c", "--embeddings", COLOUR, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["labelled"], report["folds"], report["cv_accuracy"]) == (9, 3, 1.0)
    assert report["recall"] == {"red": 1.0, "green": 1.0, "blue": 1.0}
    assert (report["proposed"], report["predictions"]) == (9, 9)
    for file, found in _labels(store, ds_id).items():
        expected_source = ("human", "accepted") if file in FIRST else ("model", "pending")
        assert [(c, s, r) for c, s, r, _ in found] == [(truth[file], *expected_source)]
    with store.session() as s:
        run = s.get_one(ModelRun, report["run_id"])
        assert run.model == f"train:{COLOUR}" and run.finished_at is not None
        assert run.params["cv_accuracy"] == 1.0
        marks = list(s.scalars(select(RunImage).where(RunImage.run_id == run.id)))
        assert len(marks) == 9 and all(0 <= m.uncertainty < 0.5 for m in marks)
        scores = [a.score for a in s.scalars(select(Annotation).where(Annotation.run_id == run.id))]
        assert all(0.5 < p <= 1 for p in scores)
        assert latest_accuracy(s, s.get_one(Dataset, ds_id)) == 1.0
    text = run_cli("train", "c", "--embeddings", COLOUR)
    assert "cross-validated accuracy 1.000 (3 folds)" in text.stdout


def test_a_class_with_fewer_than_two_labels_is_refused(
    store: Store, coloured: MakeColoured, run_cli: Any
) -> None:
    ds_id, _ = coloured(3)
    label_files(store, ds_id, {"red_000.png": ["red"], "red_001.png": ["red"],
                               "green_000.png": ["green"], "green_001.png": ["green"],
                               "blue_000.png": ["blue"]})  # fmt: skip
    _embed(store, ds_id)
    result = run_cli("train", "c", "--embeddings", COLOUR)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: dataset 'c': train needs at least 2 accepted labels per class on images with "
        "embeddings; too few: blue 1"
    )
    with store.session() as s:
        assert list(s.scalars(select(ModelRun))) == []


def test_without_embeddings_the_error_says_what_to_run(
    store: Store, coloured: MakeColoured
) -> None:
    ds_id, _ = coloured(2)
    with pytest.raises(NotFoundError, match=f"run annotator embed c --model {COLOUR}"):
        _train(store, ds_id)


def test_a_new_train_replaces_pending_proposals_never_accepted_labels(
    store: Store, coloured: MakeColoured
) -> None:
    ds_id, truth = coloured(5)
    label_files(store, ds_id, FIRST)
    _embed(store, ds_id)
    first = _train(store, ds_id)
    with store.session() as s:
        proposal = s.scalars(select(Annotation).where(Annotation.run_id == first.run_id)).first()
        assert proposal is not None
        accept_as_label(s, proposal.id, "tester")
        accepted_file = Path(s.get_one(Image, proposal.image_id).path).name
    label_files(store, ds_id, {"red_004.png": ["red"]})  # labelled by hand, proposal left
    second = _train(store, ds_id)
    assert (second.labelled, second.proposed) == (11, 4)
    found = _labels(store, ds_id)
    assert found[accepted_file] == [(truth[accepted_file], "model", "accepted", first.run_id)]
    pending = [(f, run) for f, anns in found.items() for _, _, r, run in anns if r == "pending"]
    assert sorted(run for _, run in pending) == [second.run_id] * 4
    assert found["red_004.png"] == [("red", "human", "accepted", None)]
    assert second.retired == 1  # red_004's old proposal went, nothing replaced it


def test_multilabel_proposes_each_probable_class(store: Store, coloured: MakeColoured) -> None:
    ds_id, truth = coloured(5, task="multilabel", name="m")
    wanted = {f"{c}_{i:03d}.png": [c] for c in ("red", "green") for i in range(3)}
    wanted |= {f"blue_{i:03d}.png": ["blue", "green"] for i in range(3)}  # blue is also 'green'
    label_files(store, ds_id, wanted)
    _embed(store, ds_id)
    report = _train(store, ds_id)
    assert (report.support, report.cv_accuracy) == ({"red": 3, "green": 6, "blue": 3}, 1.0)
    found = {f: sorted(c for c, s, r, _ in anns if r == "pending")
             for f, anns in _labels(store, ds_id).items()}  # fmt: skip
    assert found["red_004.png"] == ["red"]
    assert found["green_004.png"] == ["green"]
    assert found["blue_004.png"] == ["blue", "green"]
    assert found["blue_000.png"] == [] and len(truth) == 15


def test_evaluate_scores_the_trained_run(
    store: Store, coloured: MakeColoured, run_cli: Any
) -> None:
    ds_id, _ = coloured(4)
    label_files(store, ds_id, FIRST)
    _embed(store, ds_id)
    report = _train(store, ds_id)
    with store.session() as s:
        for ann in list(s.scalars(select(Annotation).where(Annotation.run_id == report.run_id))):
            accept_as_label(s, ann.id, "tester")
    result = run_cli("evaluate", "c", "--json")
    assert result.exit_code == 0, result.output
    scored = json.loads(result.stdout)
    assert (scored["run"]["id"], scored["images"], scored["accuracy"]) == (report.run_id, 3, 1.0)


def test_a_train_killed_between_batches_keeps_old_proposals_and_a_rerun_finishes(
    store: Store, coloured: MakeColoured, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds_id, _ = coloured(6)
    label_files(store, ds_id, FIRST)
    _embed(store, ds_id)
    first = _train(store, ds_id)
    real_write = store_predictions.write_batch
    calls: list[int] = []

    def dying_write(session: Session, run: ModelRun, results: list[ImagePredictions]) -> int:
        calls.append(len(results))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_write(session, run, results)

    monkeypatch.setattr(train_module, "WRITE_BATCH", 4)
    monkeypatch.setattr(store_predictions, "write_batch", dying_write)
    with pytest.raises(KeyboardInterrupt):
        _train(store, ds_id)
    pending = [run for anns in _labels(store, ds_id).values() for _, _, r, run in anns
               if r == "pending"]  # fmt: skip
    assert sorted(pending) == [first.run_id] * 5 + [first.run_id + 1] * 4  # one image each
    monkeypatch.setattr(store_predictions, "write_batch", real_write)
    last = _train(store, ds_id)
    pending = [run for anns in _labels(store, ds_id).values() for _, _, r, run in anns
               if r == "pending"]  # fmt: skip
    assert pending == [last.run_id] * 9
