"""Generates the JSON Schema files in schemas/ from the pydantic models at our edges (or the
dataclasses pydantic validates there). `python -m annotator.schemas --write` regenerates them;
`--check` (and a test) fails when a file is stale. Models are named by import path so optional
edges load only here."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
MODELS = {
    "dataset-config.json": "annotator.cli.dataset_config:DatasetConfig",
    "export-manifest.json": "annotator.formats.manifest:Manifest",
    "settings.json": "annotator.config:Settings",
}


def render(target: str) -> str:
    module, name = target.split(":")
    model = getattr(importlib.import_module(module), name)
    if hasattr(model, "model_json_schema"):
        schema = model.model_json_schema()
    else:  # a dataclass that pydantic validates
        from pydantic import TypeAdapter

        schema = TypeAdapter(model).json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def stale(folder: Path = SCHEMA_DIR) -> list[str]:
    """File names whose content differs from what the models generate now."""
    out = []
    for filename, target in MODELS.items():
        path = folder / filename
        if not path.exists() or path.read_text(encoding="utf-8") != render(target):
            out.append(filename)
    return out


def write(folder: Path = SCHEMA_DIR) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, target in MODELS.items():
        path = folder / filename
        path.write_text(render(target), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="regenerate the files")
    parser.add_argument("--check", action="store_true", help="exit 1 when a file is stale")
    args = parser.parse_args(argv)
    if args.write:
        for path in write():
            print(f"wrote {path}")
        return 0
    bad = stale()
    for name in bad:
        print(f"stale: schemas/{name} (run: python -m annotator.schemas --write)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
