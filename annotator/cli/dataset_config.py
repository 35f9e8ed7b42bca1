"""The dataset config file (`annotator init --config FILE`, YAML or JSON): a dataset's name,
task, classes (with optional colours) and root, validated with pydantic at the edge and turned
into a `create_dataset` call. Its JSON Schema lives in schemas/dataset-config.json."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from annotator.errors import InvalidInputError


class ClassConfig(BaseModel):
    """One class; its position in the list is its hotkey and export index."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="Unique class name.")
    color: str | None = Field(
        default=None, pattern=r"^#[0-9a-fA-F]{6}$", description="Display colour, #rrggbb."
    )


class DatasetConfig(BaseModel):
    """A dataset to create: `annotator init --config pets.yaml`."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="Unique dataset name.")
    task: Literal["classification", "multilabel", "detection"] = Field(
        description="classification: one label per image; multilabel: any number of "
        "whole-image labels; detection: bounding boxes."
    )
    classes: list[ClassConfig | str] = Field(
        default_factory=list, description="Classes in order (names or {name, color})."
    )
    root: str | None = Field(
        default=None,
        description="Folder image paths are stored relative to; relative to the config file.",
    )

    @field_validator("classes")
    @classmethod
    def _unique(cls, value: list[ClassConfig | str]) -> list[ClassConfig | str]:
        names = [c if isinstance(c, str) else c.name for c in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate class names: {', '.join(dupes)}")
        return value

    def class_list(self) -> list[ClassConfig]:
        return [ClassConfig(name=c) if isinstance(c, str) else c for c in self.classes]


def load_dataset_config(path: Path) -> DatasetConfig:
    """Read and validate a YAML or JSON dataset config; errors name the file and field."""
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"{path}: malformed YAML/JSON ({exc})".replace("\n", " ")) from exc
    config = validated(raw, str(path))
    if config.root is not None:
        config.root = str((path.parent / config.root).resolve())
    return config


def validated(raw: object, source: str) -> DatasetConfig:
    """`raw` (a config file's content, or the options of `init`) as a `DatasetConfig`; the first
    problem becomes one error naming `source` and the field."""
    try:
        return DatasetConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise InvalidInputError(f"{source}: {where}: {message}") from exc
