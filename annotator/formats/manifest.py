"""`manifest.json`, written beside every export: which tool and version wrote it, from which
dataset and history position, the classes, counts per split and class, and the SHA-256 of every
label file, so a training run can cite exactly what it trained on. Plain dataclasses that pydantic
validates (`read_manifest`) and describes (the JSON Schema in schemas/; attribute docstrings are
the field descriptions): writing one loads no pydantic, a tenth of a small export's time."""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from annotator.annotation import Sample
from annotator.store.export_reads import ExportRow

# pydantic reads the attribute docstrings as the fields' descriptions
DOCSTRINGS = {"use_attribute_docstrings": True}


@dataclass
class SplitCounts:
    """What one split of an export holds."""

    __pydantic_config__ = DOCSTRINGS

    images: int = 0
    labels: int = 0
    """Labels written (boxes or image-level labels)."""
    negatives: int = 0
    """Images written with no label."""
    classes: dict[str, int] = field(default_factory=dict)
    """Labels per class."""


class Tally:
    """Counts one split's samples cheaply; `counts()` makes the manifest's record."""

    def __init__(self, index: dict[int, int] | None = None) -> None:
        self.images = self.labels = self.negatives = 0
        self.classes: Counter[str] = Counter()
        self.index = index or {}  # class id: position in the class order (`count_rows`)
        self.ids: Counter[int] = Counter()  # labels per class id (`count_rows`)

    def count(self, sample: Sample) -> None:
        self.images += 1
        self.labels += len(sample.labels)
        self.negatives += not sample.labels
        self.classes.update(label.class_name for label in sample.labels)

    def count_rows(self, rows: list[ExportRow]) -> None:
        """`count` of an image given as the store's label rows (class ids, placed in the
        `order` that `counts` is given by the `index` the tally was made with)."""
        self.images += 1
        self.labels += len(rows)
        self.negatives += not rows
        self.ids.update([row[2] for row in rows])

    def counts(self, order: list[str]) -> SplitCounts:
        for class_id, n in self.ids.items():
            self.classes[order[self.index[class_id]]] += n
        self.ids.clear()
        classes = {name: self.classes[name] for name in order if self.classes[name]}
        return SplitCounts(images=self.images, labels=self.labels, negatives=self.negatives,
                           classes=classes)  # fmt: skip


@dataclass(kw_only=True)
class Manifest:
    """The record of one export."""

    __pydantic_config__ = DOCSTRINGS

    tool: str = "annotator"
    version: str
    format: str
    dataset: str
    task: str
    classes: list[str]
    """Class names in the dataset's order (COCO ids 1..N, YOLO indices 0..N-1)."""
    history_position: int
    """Newest history event id the export reflects."""
    snapshot: str | None = None
    """Tag of the snapshot the export matches (none when untagged)."""
    include_pending: bool
    media: str
    created_at: str
    splits: dict[str, SplitCounts]
    left_out: dict[str, int] = field(default_factory=dict)
    """Images not exported, by reason."""
    files: dict[str, str] = field(default_factory=dict)
    """SHA-256 of each label file, by relative path."""
    extra: dict[str, Any] = field(default_factory=dict)


class FileList:
    """The manifest's `files` as they are produced (a million label files: 230 MB as a dict),
    spooled to a file in the export's building folder, each entry already as `manifest.json`
    writes it; `write_manifest` copies them in and removes the spool. Entries are given once
    each (export names are unique)."""

    NAME = ".manifest-files.partial"

    def __init__(self, folder: Path) -> None:
        self.path = folder / self.NAME
        self.out: BinaryIO | None = None
        self.count = 0

    def add(self, relative: str, digest: str) -> None:
        if self.out is None:
            self.out = open(self.path, "wb")  # noqa: SIM115 - closed by `copy_to`/`discard`
        self.out.write(b",\n    %s: %s" % (orjson.dumps(relative), orjson.dumps(digest)))
        self.count += 1

    def copy_to(self, target: BinaryIO, first: bool) -> None:
        """Write the entries to `target` (`first`: none is written before them), and remove
        the spool."""
        if self.out is None:
            return
        self.out.close()
        with open(self.path, "rb") as spool:
            if first:
                spool.seek(1)  # no comma before the first entry
            shutil.copyfileobj(spool, target, 1 << 20)
        self.discard()

    def discard(self) -> None:
        if self.out is not None:
            self.out.close()
        self.path.unlink(missing_ok=True)


def write_manifest(dest: Path, manifest: Manifest, listed: FileList | None = None) -> Path:
    """`manifest.json` in `dest`: `manifest` with the entries of `listed` after its own
    `files`, byte for byte as if they had been in `files` (streamed, never all in memory)."""
    path = dest / "manifest.json"
    if listed is None or not listed.count:
        path.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
        return path
    data = orjson.dumps(
        vars(manifest) | {"files": {}}, option=orjson.OPT_INDENT_2
    )  # `files` is a top-level key (indented 2): its `{}` is found only there
    head, _, tail = data.partition(b'\n  "files": {}')
    with open(path, "wb") as out:
        out.write(head + b'\n  "files": {')
        own = [
            b"\n    %s: %s" % (orjson.dumps(k), orjson.dumps(v)) for k, v in manifest.files.items()
        ]
        out.write(b",".join(own))
        listed.copy_to(out, first=not own)
        out.write(b"\n  }" + tail)
    return path


def read_manifest(path: Path) -> Manifest:
    """`manifest.json` read back and checked (a pydantic `ValidationError` when it is not one)."""
    from pydantic import TypeAdapter

    return TypeAdapter(Manifest).validate_json(path.read_bytes())
