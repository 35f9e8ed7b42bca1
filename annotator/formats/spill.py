"""Labels set aside on disk until their image's batch is imported: what lets a streamed source
whose labels come in any order (COCO's annotations may name any image anywhere in the file)
be imported without holding every label in memory.

Labels are keyed by their image's position in the source; those of `bucket` consecutive
positions share one file in a private temporary folder, written in `marshal` blocks (each
after its length) whenever `budget` labels are buffered. Reading a position loads its bucket
(one at a time). Pure file I/O; knows nothing of formats or the store."""

from __future__ import annotations

import marshal
import os
import shutil
import tempfile
from typing import Any

Record = tuple[Any, ...]  # (position, ...): whatever the reader needs to rebuild a label


class Spill:
    """Records by position: `add` them in any order, `flush`, then read them by position."""

    def __init__(self, bucket: int, budget: int = 200_000) -> None:
        self.folder = tempfile.mkdtemp(prefix="annotator-spill-")
        self.bucket, self.budget = bucket, budget
        self.buffers: dict[int, list[Record]] = {}
        self.buffered = 0
        self.loaded: tuple[int, dict[int, list[Record]]] = (-1, {})

    def add(self, record: Record) -> None:
        self.buffers.setdefault(record[0] // self.bucket, []).append(record)
        self.buffered += 1
        if self.buffered >= self.budget:
            self.flush()

    def flush(self) -> None:
        for number, records in self.buffers.items():
            block = marshal.dumps(records)
            with open(self._path(number), "ab") as fh:
                fh.write(len(block).to_bytes(8, "little") + block)
        self.buffers.clear()
        self.buffered = 0

    def records(self, position: int) -> list[Record]:
        """The records of `position`, in the order they were added."""
        number = position // self.bucket
        if self.loaded[0] != number:
            self.loaded = (-1, {})  # release the previous bucket before reading the next
            self.loaded = (number, self._load(number))
        return self.loaded[1].get(position, [])

    def _load(self, number: int) -> dict[int, list[Record]]:
        grouped: dict[int, list[Record]] = {}
        path = self._path(number)
        if not os.path.exists(path):
            return grouped
        with open(path, "rb") as fh:
            data = fh.read()
        view, at = memoryview(data), 0
        while at < len(data):  # blocks of (length, marshal data): loads from memory is fast
            size = int.from_bytes(view[at : at + 8], "little")
            for record in marshal.loads(view[at + 8 : at + 8 + size]):
                found = grouped.get(record[0])
                if found is None:
                    grouped[record[0]] = [record]
                else:
                    found.append(record)
            at += 8 + size
        return grouped

    def _path(self, number: int) -> str:
        return os.path.join(self.folder, f"{number}.marshal")

    def close(self) -> None:
        self.buffers.clear()
        self.loaded = (-1, {})
        shutil.rmtree(self.folder, ignore_errors=True)
