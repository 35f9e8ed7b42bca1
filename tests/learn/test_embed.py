"""Embedding images: the real MobileNetV2 on the sample photos (EXIF-true pixels), the stored
float16 vectors, incremental re-runs, unreadable files, refused models, and a run killed with
SIGKILL that a re-run finishes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from annotator.errors import InvalidInputError
from annotator.learn.embed import EmbedOptions, EmbedReport, embed
from annotator.prelabel.frames import IMAGENET_MEAN, IMAGENET_STD
from annotator.store.db import Store
from annotator.store.embeddings import load_embeddings
from annotator.store.models import Dataset, Embedding, Image
from tests.conftest import REPO
from tests.learn.conftest import COLOUR, SLOW_COLOUR, MakeColoured
from tests.prelabel.conftest import MakeDataset


def _embed(store: Store, ds_id: int, **options: object) -> EmbedReport:
    with store.session() as s:
        return embed(s, s.get_one(Dataset, ds_id), EmbedOptions(**options))  # type: ignore[arg-type]


def _by_file(store: Store, ds_id: int, model: str) -> dict[str, np.ndarray]:
    with store.session() as s:
        ids, matrix = load_embeddings(s, ds_id, model)
        names = {i.id: Path(i.path).name for i in s.scalars(select(Image))}
    return {names[i]: matrix[k] for k, i in enumerate(ids)}


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_mobilenet_vectors_of_the_sample_photos(
    store: Store, make_dataset: MakeDataset, photos: Path, mobilenet_weights: Path
) -> None:
    ds_id = make_dataset("classification", ["cat", "dog"], photos)
    report = _embed(store, ds_id, weights=mobilenet_weights, workers=0, batch_size=2)
    assert (report.embedded, report.dim, report.bad) == (5, 1280, [])
    assert report.features == "input of classifier.1 (1280 values)"
    vectors = _by_file(store, ds_id, "mobilenet_v2")
    assert sorted(vectors) == ["cat_chelsea.jpg", "coffee.jpg", "dog.jpg", "dog_exif_rot.jpg",
                               "eagle.jpg"]  # fmt: skip
    # the rotated file shows the same dog once its EXIF orientation is applied
    same = _cos(vectors["dog.jpg"], vectors["dog_exif_rot.jpg"])
    others = [_cos(vectors["dog.jpg"], v) for f, v in vectors.items() if not f.startswith("dog")]
    assert same > 0.95 and same > max(others) + 0.2
    with store.session() as s:
        row = s.scalars(select(Embedding)).first()
        assert row is not None and len(row.vector) == 2 * 1280 and row.dim == 1280
        assert row.weights_sha256 is not None and report.weights_sha256 == row.weights_sha256


def test_vectors_are_the_pooled_features_in_float16(store: Store, coloured: MakeColoured) -> None:
    ds_id, truth = coloured(2)
    _embed(store, ds_id, model=COLOUR, workers=0)
    from PIL import Image as PILImage

    with store.session() as s:
        root = Path(s.get_one(Dataset, ds_id).root or "")
    for file, vector in _by_file(store, ds_id, COLOUR).items():
        rgb = np.array(PILImage.open(root / file).getpixel((0, 0)), dtype=np.float32) / 255
        expected = (rgb - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
        assert vector.dtype == np.float32
        assert vector == pytest.approx(expected, abs=2e-3)
    assert len(truth) == 6


def test_rerun_embeds_only_what_is_missing(
    store: Store, coloured: MakeColoured, tmp_path: Path
) -> None:
    ds_id, _ = coloured(2)
    assert _embed(store, ds_id, model=COLOUR, workers=0, limit=4).embedded == 4
    again = _embed(store, ds_id, model=COLOUR, workers=0)
    assert (again.embedded, again.already_done) == (2, 4)
    done = _embed(store, ds_id, model=COLOUR, workers=0)
    assert (done.embedded, done.already_done) == (0, 6)


def test_unreadable_file_is_reported_and_skipped(store: Store, coloured: MakeColoured) -> None:
    ds_id, _ = coloured(2)
    with store.session() as s:
        ds = s.get_one(Dataset, ds_id)
        broken = Path(ds.root or "") / "red_000.png"
    broken.write_bytes(b"not a png any more")
    report = _embed(store, ds_id, model=COLOUR, workers=0)
    assert report.embedded == 5
    assert [(Path(b.path).name, b.reason.split(" (")[0]) for b in report.bad] == [
        ("red_000.png", "corrupt image")
    ]
    assert "red_000.png" not in _by_file(store, ds_id, COLOUR)


def test_a_detection_model_is_refused(store: Store, coloured: MakeColoured) -> None:
    ds_id, _ = coloured(1)
    with pytest.raises(InvalidInputError, match="embed needs a classification backbone"):
        _embed(store, ds_id, model="tests.prelabel.stub_models:fixed_boxes", workers=0)


def _count(store: Store) -> int:
    with store.session() as s:
        return int(s.scalar(select(func.count()).select_from(Embedding)) or 0)


def test_killed_embed_leaves_whole_batches_and_a_rerun_finishes(
    store: Store, coloured: MakeColoured, db_url: str
) -> None:
    kill_and_rerun(store, coloured, db_url)


def kill_and_rerun(store: Store, coloured: MakeColoured, db_url: str) -> None:
    """SIGKILL `annotator embed` once it stored two batches; a re-run embeds the rest."""
    ds_id, _ = coloured(4)  # 12 images, one per batch, 0.4 s each
    cmd = [sys.executable, "-m", "annotator", "--db", db_url, "embed", "c", "--model",
           SLOW_COLOUR, "--batch-size", "1", "--workers", "0"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 120
    while _count(store) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    at_kill = _count(store)
    assert 2 <= at_kill < 12
    with store.session() as s:
        assert all(len(e.vector) == 2 * e.dim == 6 for e in s.scalars(select(Embedding)))
    report = _embed(store, ds_id, model=SLOW_COLOUR, workers=0, batch_size=4)
    assert (report.embedded, report.already_done) == (12 - at_kill, at_kill)
    assert _count(store) == 12
