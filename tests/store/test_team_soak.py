"""The team soak: simulated annotators (processes driving the labelling app's backend, with
think time) and prelabelling workers share one dataset at once; on SQLite an `add` into
another dataset writes beside them. Afterwards: no image was served to two annotators, no
accepted edit was lost, nothing failed but stale-revision refusals, and every image was
prelabelled exactly once by the shared run.

Scale: PostgreSQL 16 annotators + 2 workers, SQLite 3 annotators + 1 worker + 1 add. The
suite runs 25 s on a few thousand images; `ANNOTATOR_SOAK=full` runs the full soak (60 s,
20,000 images) that the team section of the README quotes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from annotator.store.datasets import create_dataset
from annotator.store.db import open_store
from annotator.store.images import add_images
from annotator.store.models import Annotation, Dataset, Image, ModelRun, RunImage
from tests.conftest import REPO, needs_postgres, write_jpeg

FULL = os.environ.get("ANNOTATOR_SOAK") == "full"
SECONDS = 60.0 if FULL else 25.0
MODEL = "tests.prelabel.stub_models:tiny_classifier"
SETUPS = [
    pytest.param("postgresql", 16, 2, 20_000 if FULL else 3_000, marks=needs_postgres,
                 id="postgresql-16-annotators-2-workers"),
    pytest.param("sqlite", 3, 1, 10_000 if FULL else 1_500, id="sqlite-3-annotators-add"),
]  # fmt: skip


def _images(folder: Path, n: int) -> None:
    for i in range(n):
        write_jpeg(folder / f"{i // 1000:02d}" / f"{i:05d}.jpg", (16, 12), (i % 256, i // 256, 9))


def _setup(url: str, tmp_path: Path, n: int) -> None:
    _images(tmp_path / "imgs", n)
    _images(tmp_path / "more", 600)
    store = open_store(url)
    with store.session() as s:
        ds = create_dataset(s, "team", "classification", ["cat", "dog", "bird"],
                            tmp_path / "imgs")  # fmt: skip
        add_images(s, ds, [tmp_path / "imgs"])
        create_dataset(s, "other", "classification", ["a", "b"], tmp_path / "more")
        s.commit()
    store.close()


def _spawn(args: list[str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "ANNOTATOR_LEASE_TTL_S": "30"}
    return subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("engine", "annotators", "workers", "n"), SETUPS)
def test_team_soak(engine: str, annotators: int, workers: int, n: int, tmp_path: Path,
                   request: pytest.FixtureRequest) -> None:  # fmt: skip
    url = (
        f"sqlite:///{tmp_path / 's.db'}"
        if engine == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    _setup(url, tmp_path, n)
    cli = ["-m", "annotator", "--db", url]
    procs = [_spawn([*cli, "prelabel", "team", "--model", MODEL, "--batch-size", "16",
                     "--workers", "0", "--worker"]) for _ in range(workers)]  # fmt: skip
    if engine == "sqlite":
        procs.append(_spawn([*cli, "add", "other", str(tmp_path / "more")]))
    outs = [tmp_path / f"a{i}.json" for i in range(annotators)]
    sims = [_spawn(["-m", "tests.store.team_sim", url, "team", f"user{i}", str(SECONDS),
                    str(out)]) for i, out in enumerate(outs)]  # fmt: skip
    for p in [*sims, *procs]:
        _, err = p.communicate(timeout=900)
        assert p.returncode == 0, err.decode()[-2000:]
        assert b"locked" not in err and b"Traceback" not in err, err.decode()[-2000:]
    results = [json.loads(out.read_text()) for out in outs]
    _check(url, results, n)


def _check(url: str, results: list[dict], n: int) -> None:  # type: ignore[type-arg]
    served = Counter(i for r in results for i in r["served"])
    assert served and max(served.values()) == 1, "an image was served to two annotators"
    assert [e for r in results for e in r["errors"]] == []
    committed = dict(tuple(c) for r in results for c in r["committed"])
    assert len(committed) >= len(results)  # everyone got work done
    store = open_store(url)
    with store.session() as s:
        human = dict(s.execute(select(Annotation.image_id, Annotation.class_id)
                               .where(Annotation.source == "human")).all())  # fmt: skip
        assert {i: human.get(i) for i in committed} == committed  # no accepted edit lost
        team = s.scalar(select(Dataset.id).where(Dataset.name == "team"))
        runs = list(s.scalars(select(ModelRun).where(ModelRun.dataset_id == team)))
        assert len(runs) == 1 and runs[0].finished_at is not None
        once = Counter(s.scalars(select(RunImage.image_id).where(RunImage.run_id == runs[0].id)))
        assert len(once) == n and set(once.values()) == {1}  # every image prelabelled once
        other = s.scalar(select(Dataset.id).where(Dataset.name == "other"))
        added = s.scalars(select(Image.id).where(Image.dataset_id == other)).all()
        assert len(added) in (0, 600)  # the add ran only on SQLite, and then completely
    store.close()
