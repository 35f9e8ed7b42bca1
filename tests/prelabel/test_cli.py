"""`annotator prelabel`, `runs` and `evaluate` as a user runs them, and their one-line errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from sqlalchemy import select

from annotator.store import labels
from annotator.store.db import Store
from annotator.store.models import Dataset, Image
from tests.conftest import REPO
from tests.prelabel.conftest import MakeImages, RunCli

TINY = "tests.prelabel.stub_models:tiny_classifier"


def _init(run_cli: RunCli, folder: Path, classes: str = "cat,dog,bird,coffee") -> None:
    assert run_cli("init", "pets", "--task", "classification", "--classes", classes).exit_code == 0
    assert run_cli("add", "pets", str(folder)).exit_code == 0


def test_prelabel_with_weights_from_torch_home(
    run_cli: RunCli, store: Store, photos: Path, mobilenet_weights: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    shutil.copy(mobilenet_weights, cache / mobilenet_weights.name)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    _init(run_cli, photos)
    result = run_cli("prelabel", "pets", "--model", "mobilenet_v2", "--map", "espresso=coffee",
                     "--workers", "0")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert (
        "run 1: 5 images, 5 predictions, 0 skipped as unreadable, 0 already done" in result.stdout
    )
    assert "categories per class: cat 5, dog 118, bird 59, coffee 1" in result.stdout
    assert "images/s" in result.stderr  # the progress bar
    stats = json.loads(run_cli("stats", "pets", "--json").stdout)
    assert stats["classes"] == {"cat": 1, "dog": 2, "bird": 1, "coffee": 1}
    assert stats["review"] == {"pending": 5} and stats["source"] == {"mobilenet_v2": 5}

    (row,) = json.loads(run_cli("runs", "pets", "--json").stdout)
    assert (row["id"], row["model"], row["images"], row["predictions"]) == (1, "mobilenet_v2", 5, 5)
    assert row["weights_sha256"].startswith("b0353104") and row["finished_at"]
    assert "mobilenet_v2" in run_cli("runs", "pets").stdout

    with store.session() as s:
        names = {Path(i.path).name: i.id for i in s.scalars(select(Image))}
        classes = {c.name: c.id for c in s.scalars(select(Dataset)).one().classes}
        for name, truth in (("cat_chelsea.jpg", "cat"), ("coffee.jpg", "cat"), ("dog.jpg", "dog")):
            labels.assign_class(s, names[name], classes[truth], "ann")
    data = json.loads(run_cli("evaluate", "pets", "--json").stdout)
    assert data["images"] == 3 and data["accuracy"] == pytest.approx(2 / 3)
    text = run_cli("evaluate", "pets", "--run", "1").stdout
    assert "accuracy 0.667" in text and "confusion" in text


def test_corrupt_images_are_reported_and_the_run_goes_on(
    run_cli: RunCli, make_images: MakeImages, store: Store
) -> None:
    paths = make_images(3)
    _init(run_cli, paths[0].parent, "cat,dog,bird")
    paths[1].write_bytes(paths[1].read_bytes()[:200])  # cut short after it was added
    result = run_cli("prelabel", "pets", "--model", TINY, "--workers", "0")
    assert result.exit_code == 0
    assert "run 1: 2 images, 2 predictions, 1 skipped as unreadable" in result.stdout
    assert f"skipped {paths[1]}: corrupt image (" in result.stderr
    result = run_cli("prelabel", "pets", "--model", TINY, "--workers", "0")
    assert (
        "run 2: 0 images, 0 predictions, 1 skipped as unreadable, 2 already done" in result.stdout
    )


@pytest.fixture
def other_checkpoint(tmp_path: Path) -> Path:
    from torchvision.models import get_model

    path = tmp_path / "squeezenet.pth"
    torch.save(get_model("squeezenet1_1", weights=None).state_dict(), path)
    return path


def test_bad_input_is_one_clear_line(
    run_cli: RunCli, make_images: MakeImages, tmp_path: Path, mobilenet_weights: Path,
    other_checkpoint: Path,
) -> None:  # fmt: skip
    _init(run_cli, make_images(1)[0].parent, "cat,dog")
    (tmp_path / "notes.txt").write_text("hello\n")
    cases = [
        (["--model", "mobilenet_v2", "--weights", str(tmp_path / "notes.txt")],
         f"error: {tmp_path / 'notes.txt'}: not a PyTorch checkpoint (not written by torch.save)"),
        (["--model", "mobilenet_v2", "--weights", str(other_checkpoint)],
         f"error: {other_checkpoint}: does not fit mobilenet_v2: "),
        (["--model", "resnet_51"], "error: unknown model 'resnet_51': not a torchvision "),
        (["--model", "mobilenet_v2", "--weights", str(mobilenet_weights), "--map",
          "espresso=coffee"], "error: --map espresso=coffee: dataset 'pets' has no class "
                              "'coffee' (classes: cat, dog)"),
        (["--model", TINY, "--threshold", "1.5"], "error: --threshold 1.5: must lie in [0, 1]"),
    ]  # fmt: skip
    if not torch.cuda.is_available():
        cases.append((["--model", TINY, "--device", "cuda"], "error: --device cuda: torch sees no"))
    for args, start in cases:
        result = run_cli("prelabel", "pets", *args)
        assert result.exit_code == 2, (args, result.stdout, result.stderr)
        assert result.stderr.startswith(start), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    failing_models = [
        (["--model", "tests.prelabel.stub_models:too_few_names", "--workers", "0"],
         "error: the model returned scores of shape [1, 3] for 1 images; expected [1, 2]"),
        (["--model", "tests.prelabel.stub_models:not_dicts", "--workers", "0"],
         "error: the detection model must return one dict with boxes, labels and scores"),
    ]  # fmt: skip
    for args, start in failing_models:  # fails at the first batch: after the progress bar
        result = run_cli("prelabel", "pets", *args)
        assert result.exit_code == 2 and "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith(start), result.stderr
    for args in (["runs", "nope"], ["evaluate", "pets"], ["evaluate", "pets", "--run", "7"]):
        result = run_cli(*args)
        assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1


def test_the_commands_do_not_load_torch_for_help() -> None:
    code = (
        "import sys; import annotator.cli.prelabel as m; from annotator.main import cli; "
        "assert 'torch' not in sys.modules and 'torchvision' not in sys.modules, 'torch loaded'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    help_text = subprocess.run(
        [sys.executable, "-m", "annotator", "prelabel", "--help"], check=True, cwd=REPO,
        capture_output=True, text=True,
    ).stdout  # fmt: skip
    assert "--model ARCH" in help_text and "--map CATEGORY=CLASS" in help_text


def test_runs_says_a_trained_run_that_stopped_part_way_is_not_resumed(
    run_cli: RunCli, store: Store, make_images: MakeImages
) -> None:
    """`train` never resumes a run it was killed in: runs says so instead of "N left" (which
    reads as work still going on); an unfinished prelabel run keeps its count."""
    from annotator.store.predictions import open_run

    _init(run_cli, make_images(3)[0].parent)
    with store.session() as s:
        ds = s.scalars(select(Dataset)).one()
        open_run(s, ds, "train:mobilenet_v2", None, {})
        open_run(s, ds, "mobilenet_v2", None, {})
        s.commit()
    rows = json.loads(run_cli("runs", "pets", "--json").stdout)
    states = {r["model"]: r["state"] for r in rows}
    assert states == {
        "train:mobilenet_v2": "stopped, 3 left (train again)",
        "mobilenet_v2": "3 left",
    }
    assert run_cli("runs", "pets").exit_code == 0
