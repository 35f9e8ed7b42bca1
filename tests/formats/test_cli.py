"""The CLI: import, export, split and demo as a user runs them (exit codes, messages, files)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import PEER_DATA, REPO, SAMPLE_DATA
from tests.formats.conftest import write_coco

Run = Callable[..., Any]


def _import_sample(run_cli: Run, name: str = "scenes", labels: str = "detection.json") -> Any:
    return run_cli("import", "coco", str(SAMPLE_DATA / "annotations" / labels), "--dataset",
                   name, "--images", str(SAMPLE_DATA / "images"))  # fmt: skip


def test_import_coco_then_split_then_export(run_cli: Run, tmp_path: Path) -> None:
    result = _import_sample(run_cli)
    assert result.exit_code == 0, result.stderr
    assert "imported 15 images (2 negatives), 34 labels into detection dataset 'scenes'" in (
        result.stdout
    )
    result = run_cli("split", "scenes", "--ratios", "train=0.6,val=0.2,test=0.2", "--seed", "1")
    assert result.exit_code == 0 and "assigned 15 images (train 9, val 3, test 3)" in result.stdout
    result = run_cli("export", "yolo", "scenes", str(tmp_path / "out"), "--media", "none")
    assert result.exit_code == 0, result.stderr
    assert "exported 15 images (2 negatives), 34 labels of 'scenes' as yolo" in result.stdout
    assert (tmp_path / "out" / "data.yaml").exists()
    assert not list((tmp_path / "out" / "images").rglob("*.jpg"))
    again = run_cli("export", "yolo", "scenes", str(tmp_path / "out"))
    assert again.exit_code == 2
    assert (
        again.stderr.strip()
        == f"error: {tmp_path / 'out'} is not empty: pass --overwrite to replace it"
    )
    assert run_cli("export", "yolo", "scenes", str(tmp_path / "out"), "--overwrite").exit_code == 0
    assert len(list((tmp_path / "out" / "images").rglob("*.jpg"))) == 15


def test_problems_go_to_stderr_and_exit_code_says_if_anything_came_in(run_cli: Run,
                                                                        tmp_path: Path) -> None:  # fmt: skip
    bad = write_coco(tmp_path / "bad.json", [{"id": 1, "file_name": "../../x.jpg"}], [])
    result = run_cli("import", "coco", str(bad), "--dataset", "d")
    assert result.exit_code == 1
    assert f"problem: {bad}: image id 1: file_name '../../x.jpg' points outside" in result.stderr
    assert "0 problems" not in result.stdout and "1 problems" in result.stdout
    result = run_cli("import", "yolo", str(PEER_DATA / "roboflow_dataset" / "yolo"), "-d", "rf")
    assert result.exit_code == 0
    assert "note: " in result.stderr and "identical bytes" in result.stderr
    quiet = run_cli("import", "yolo", str(PEER_DATA / "roboflow_dataset" / "yolo"), "-d", "rf2",
                    "--quiet")  # fmt: skip
    assert "problem:" not in quiet.stderr and "2 problems" in quiet.stdout


def test_import_imagefolder_and_refusals(run_cli: Run, tmp_path: Path) -> None:
    result = run_cli("import", "imagefolder", str(PEER_DATA / "imagenet_subsets_dataset"), "-d",
                     "inet")  # fmt: skip
    assert result.exit_code == 0 and "imported 2 images" in result.stdout
    missing = run_cli("import", "imagefolder", str(tmp_path / "nope"), "-d", "x")
    assert missing.exit_code == 2 and "no such folder" in missing.stderr
    _import_sample(run_cli)
    refused = run_cli("export", "imagefolder", "scenes", str(tmp_path / "o"))
    assert refused.exit_code == 2 and "export it as coco or yolo" in refused.stderr
    bad = run_cli("split", "scenes", "--ratios", "train=0.9")
    assert bad.exit_code == 2 and "must add up to 1" in bad.stderr
    wrong = run_cli("import", "coco", str(SAMPLE_DATA / "annotations" / "detection.json"),
                    "-d", "scenes", "--task", "classification")  # fmt: skip
    assert wrong.exit_code == 2 and "is detection, not classification" in wrong.stderr


def test_include_pending_option(run_cli: Run, tmp_path: Path) -> None:
    _import_sample(run_cli, "pets", "classification.json")
    run_cli("split", "pets", "--ratios", "train=1")
    result = run_cli("export", "coco", "pets", str(tmp_path / "o"), "--include-pending")
    assert result.exit_code == 0
    manifest = orjson.loads((tmp_path / "o" / "manifest.json").read_bytes())
    assert manifest["include_pending"] is True and manifest["splits"]["train"]["images"] == 15


def test_demo_builds_both_datasets_offline_and_is_repeatable(run_cli: Run) -> None:
    result = run_cli("demo", str(SAMPLE_DATA))
    assert result.exit_code == 0, result.stderr
    assert "pets: 7 more photos left unlabeled" in result.stdout
    assert "scenes (detection): 15 images, 34 labels" in result.stdout
    pets = orjson.loads(run_cli("stats", "pets", "--json").stdout)
    assert pets["images"] == 15 and pets["status"] == {"labeled": 8, "unlabeled": 7}
    assert pets["source"]["human"] == 8 and pets["source"]["mobilenet_v2"] >= 1
    assert pets["review"]["pending"] == pets["source"]["mobilenet_v2"]
    again = run_cli("demo", str(SAMPLE_DATA))
    assert again.exit_code == 0 and "15 images already in the dataset (skipped)" in again.stdout
    assert orjson.loads(run_cli("stats", "pets", "--json").stdout) == pets
    stats = run_cli("stats", "scenes", "--json")
    data = orjson.loads(stats.stdout)
    assert data["split"] == {"train": 11, "val": 4} and data["annotations"] == 34


@pytest.mark.parametrize("args", [["import"], ["import", "coco"], ["import", "yolo"],
                                  ["import", "imagefolder"], ["export"], ["split"], ["demo"]])  # fmt: skip
def test_every_command_explains_itself(run_cli: Run, args: list[str]) -> None:
    result = run_cli(*args, "--help")
    assert result.exit_code == 0 and len(result.stdout.split("\n\n")[1].strip()) > 20


@pytest.mark.parametrize(
    ("modules", "forbidden"),
    [
        ("annotator.cli.formats, annotator.cli.demo",
         ("sqlalchemy", "pydantic", "annotator.store", "annotator.formats", "torch", "fiftyone")),
        ("annotator.formats.importing, annotator.formats.exporting",
         ("textual", "torch", "torchvision", "fiftyone", "annotator.cli", "annotator.tui")),
    ],
)  # fmt: skip
def test_import_hygiene(modules: str, forbidden: tuple[str, ...]) -> None:
    code = f"import sys, {modules}; print([m for m in {forbidden!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True)  # fmt: skip
    assert out.stdout.strip() == "[]"
