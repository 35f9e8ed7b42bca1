"""schemas/ is what the pydantic models generate now, and the dataset config file works."""

from __future__ import annotations

import json
from pathlib import Path

from annotator import schemas


def test_schema_files_are_fresh() -> None:
    assert schemas.stale() == [], "run: python -m annotator.schemas --write"


def test_every_schema_file_has_its_model() -> None:
    """No file in schemas/ outlives the model it described."""
    assert sorted(p.name for p in schemas.SCHEMA_DIR.glob("*.json")) == sorted(schemas.MODELS)


def test_staleness_is_detected(tmp_path: Path) -> None:
    schemas.write(tmp_path)
    assert schemas.stale(tmp_path) == []
    path = tmp_path / "dataset-config.json"
    data = json.loads(path.read_text())
    data["title"] = "changed"
    path.write_text(json.dumps(data))
    assert schemas.stale(tmp_path) == ["dataset-config.json"]


def test_init_from_config_file(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "pets.yaml"
    config.write_text(
        "name: pets\ntask: detection\nroot: photos\n"
        "classes:\n  - cat\n  - {name: dog, color: '#112233'}\n"
    )
    result = run_cli("init", "--config", str(config))
    assert result.exit_code == 0, result.stderr
    data = json.loads(run_cli("stats", "pets", "--json").stdout)
    assert list(data["classes"]) == ["cat", "dog"]
    assert data["root"] == str((tmp_path / "photos").resolve())
    assert "#112233" in run_cli("classes", "pets").stdout


def test_bad_config_file_names_file_and_field(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "bad.yaml"
    config.write_text("name: pets\ntask: segmentation\n")
    result = run_cli("init", "--config", str(config))
    assert result.exit_code == 2
    assert f"{config}: task:" in result.stderr
    config.write_text("name: [unclosed\n")
    result = run_cli("init", "--config", str(config))
    assert result.exit_code == 2
    assert "malformed YAML" in result.stderr
