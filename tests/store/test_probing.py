"""Probing in worker processes (large imports) gives what probing in threads gives: the same
hashes and sizes, the same refusals with their reasons, and Pillow's warnings naming the file."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

import annotator.store.probing as probing
from annotator.store.imagefile import BadImage, ImageInfo, ImageWarning
from tests.conftest import write_jpeg
from tests.store.test_add_images import corrupt_exif_jpeg


def _files(folder: Path) -> list[str]:
    paths = []
    for i in range(7):
        paths.append(str(write_jpeg(folder / f"ok{i}.jpg", (20 + i, 10), (i * 30, 0, 0))))
    truncated = folder / "cut.jpg"
    truncated.write_bytes(Path(paths[0]).read_bytes()[:-40])
    (folder / "empty.jpg").write_bytes(b"")
    odd = corrupt_exif_jpeg(folder / "odd.jpg")
    return [*paths, str(truncated), str(folder / "empty.jpg"), str(odd)]


def _as_facts(results: list[ImageInfo | BadImage]) -> list[tuple[object, ...]]:
    return [
        (r.path, r.reason) if isinstance(r, BadImage)
        else (str(r.path), r.sha256, r.width, r.height, r.orientation, r.size_bytes)
        for r in results
    ]  # fmt: skip


@pytest.mark.parametrize("processes", [False, True])
def test_processes_and_threads_agree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, processes: bool
) -> None:
    paths = _files(tmp_path)
    batches = [paths[:4], paths[4:8], paths[8:]]
    monkeypatch.setattr(probing, "PART", 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = _as_facts([probing.probe_one(p) for p in paths])
    monkeypatch.setattr(probing, "PROCESS_MIN", 0 if processes else 1 << 30)
    monkeypatch.setattr(probing.os, "cpu_count", lambda: 2)
    with pytest.warns(ImageWarning) as caught:
        got = [r for batch in probing.probe_batches(batches, len(paths), 2) for r in batch]
    assert _as_facts(got) == expected
    reasons = dict(f[:2] for f in expected if len(f) == 2)  # type: ignore[misc]
    assert "truncated" in str(reasons[str(tmp_path / "cut.jpg")])
    assert reasons[str(tmp_path / "empty.jpg")] == "empty file (0 bytes)"
    assert [str(w.message) for w in caught if "EXIF" in str(w.message)] == [
        f"{tmp_path / 'odd.jpg'}: Corrupt EXIF data.  Expecting to read 12 bytes but only got 0. "
    ]


CHILD = """
import sys, time
from pathlib import Path
import annotator.store.probing as probing
probing.PROCESS_MIN = 0
real = probing._probe_part
def slow(paths):
    time.sleep(0.5)
    return real(paths)
probing._probe_part = slow
paths = [str(p) for p in sorted(Path(sys.argv[1]).glob("ok*.jpg"))]
batches = probing.probe_batches([paths] * 50, 50 * len(paths), 2)
next(batches)
import multiprocessing
print(" ".join(str(p.pid) for p in multiprocessing.active_children()), flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc (Linux)")
def test_a_killed_import_leaves_no_worker_behind(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import REPO

    _files(tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None
    workers = [int(p) for p in proc.stdout.readline().split()]
    assert workers and all(_alive(p) for p in workers)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 30
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in workers)
