"""Registering images: header-only facts, duplicates, every kind of bad file, interruption."""

from __future__ import annotations

import os
import signal
import sqlite3
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

from sqlalchemy import select

from annotator.store.datasets import create_dataset
from annotator.store.db import Store
from annotator.store.images import add_images, resolve_path
from annotator.store.models import Dataset, Image
from tests.conftest import write_jpeg


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A well-formed PNG that *claims* width x height (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
                     + chunk(b"IEND", b""))  # fmt: skip
    return path


def _bad_files(folder: Path) -> dict[str, str]:
    """Each bad kind, with the words its rejection must contain."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.jpg").write_bytes(b"")
    good = write_jpeg(folder / "tmp.jpg").read_bytes()
    (folder / "tmp.jpg").unlink()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (folder / "notes.jpg").write_text("this is not an image")
    _png_header_only(folder / "bomb.png", 30000, 30000)
    os.symlink("loop.jpg", folder / "loop.jpg")
    return {
        "empty.jpg": "empty",
        "truncated.jpg": "truncated",
        "notes.jpg": "not an image",
        "bomb.png": "decompression bomb",
        "loop.jpg": "symlink loop",
    }


def _new(store: Store, name: str = "d", task: str = "classification") -> int:
    with store.session() as s:
        return create_dataset(s, name, task, ["a"]).id


def _add(store: Store, ds_id: int, *paths: Path):  # type: ignore[no-untyped-def]
    with store.session() as s:
        ds = s.get(Dataset, ds_id)
        assert ds is not None
        return add_images(s, ds, list(paths))


def test_add_reads_displayed_size_and_hash(store: Store, tmp_path: Path) -> None:
    upright = write_jpeg(tmp_path / "imgs" / "up.jpg", (40, 30))
    rotated = write_jpeg(tmp_path / "imgs" / "sub" / "rot.jpg", (40, 30), orientation=6)
    ds_id = _new(store)
    report = _add(store, ds_id, tmp_path / "imgs")
    assert (report.added, report.duplicates, report.rejected) == (2, 0, [])
    with store.session() as s:
        rows = {i.path: i for i in s.scalars(select(Image))}
        ds = s.get(Dataset, ds_id)
        assert ds is not None and ds.root == str((tmp_path / "imgs").resolve())
        assert (rows["up.jpg"].width, rows["up.jpg"].height, rows["up.jpg"].orientation) == (
            40,
            30,
            1,
        )
        assert (rows["sub/rot.jpg"].width, rows["sub/rot.jpg"].height) == (30, 40)
        assert rows["sub/rot.jpg"].orientation == 6
        assert rows["up.jpg"].size_bytes == upright.stat().st_size
        assert resolve_path(ds, rows["sub/rot.jpg"].path) == rotated.resolve()


def test_readding_and_copies_are_noops(store: Store, make_images, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    paths = make_images(5)
    ds_id = _new(store)
    assert _add(store, ds_id, paths[0].parent).added == 5
    again = _add(store, ds_id, paths[0].parent)
    assert (again.added, again.duplicates) == (0, 5)
    copy = tmp_path / "imgs" / "copy_of_first.jpg"
    copy.write_bytes(paths[0].read_bytes())
    third = _add(store, ds_id, copy)
    assert (third.added, third.duplicates) == (0, 1)
    with store.session() as s:
        assert len(s.scalars(select(Image.id)).all()) == 5


def test_bad_files_are_reported_and_never_stored(store: Store, make_images, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_images(2, "mixed")
    expected = _bad_files(tmp_path / "mixed")
    ds_id = _new(store)
    report = _add(store, ds_id, tmp_path / "mixed")
    reasons = {Path(bad.path).name: bad.reason for bad in report.rejected}
    assert report.added == 2
    assert set(reasons) == set(expected)
    for name, words in expected.items():
        assert words in reasons[name], (name, reasons[name])
    with store.session() as s:
        assert sorted(s.scalars(select(Image.path))) == ["img0000.jpg", "img0001.jpg"]


def _without_root_powers() -> list[str]:
    """As root, drop the capabilities that let root read any file (as a normal user runs)."""
    if os.geteuid() != 0:
        return []
    drop = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}"]


def test_unreadable_file_is_rejected(tmp_path: Path, make_images) -> None:  # type: ignore[no-untyped-def]
    """The real CLI, run by someone who cannot read one of the files."""
    make_images(1, "imgs")
    secret = write_jpeg(tmp_path / "imgs" / "secret.jpg")
    secret.chmod(0o000)
    db = tmp_path / "u.db"
    cmd = [*_without_root_powers(), sys.executable, "-m", "annotator", "--db", str(db)]
    subprocess.run([*cmd, "init", "d", "--task", "classification"], check=True)
    out = subprocess.run([*cmd, "add", "d", str(tmp_path / "imgs")], capture_output=True,
                         text=True)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "secret.jpg: unreadable: permission denied" in out.stderr
    assert "added 1, duplicates 0, rejected 1" in out.stdout


def test_kill_mid_add_then_rerun(tmp_path: Path) -> None:
    folder = tmp_path / "many"
    for i in range(3000):
        write_jpeg(folder / f"{i // 100:02d}" / f"im{i:05d}.jpg", (24, 16), (i % 251, i % 7, 3))
    db = tmp_path / "k.db"
    cmd = [sys.executable, "-m", "annotator", "--db", str(db)]
    subprocess.run([*cmd, "init", "d", "--task", "detection"], check=True, capture_output=True)
    proc = subprocess.Popen([*cmd, "add", "-q", "d", str(folder)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 60
    count = 0
    while time.monotonic() < deadline and count == 0 and proc.poll() is None:
        time.sleep(0.05)
        with sqlite3.connect(db) as conn:
            count = conn.execute("SELECT count(*) FROM images").fetchone()[0]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        left = conn.execute("SELECT count(*) FROM images").fetchone()[0]
    assert 0 < count <= left < 3000, "the add was killed part-way"
    out = subprocess.run([*cmd, "add", "-q", "d", str(folder)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        total, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT sha256) FROM images"
        ).fetchone()
    assert total == distinct == 3000


def corrupt_exif_jpeg(path: Path) -> Path:
    """A JPEG whose EXIF block promises 3 entries and holds 1 (Pillow: "Corrupt EXIF data")."""
    write_jpeg(path)
    data = path.read_bytes()
    entry = struct.pack("<HHI4s", 0x0112, 3, 1, b"\x01\x00\x00\x00")
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 3) + entry
    app1 = b"Exif\x00\x00" + tiff
    path.write_bytes(data[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + data[2:])
    return path


def test_corrupt_exif_warning_names_the_file(tmp_path: Path) -> None:
    import pytest

    from annotator.store.imagefile import ImageWarning, probe

    bad = corrupt_exif_jpeg(tmp_path / "odd.jpg")
    with pytest.warns(ImageWarning) as caught:
        info = probe(bad)
    assert info.width == 64 and info.orientation == 1  # still stored, upright
    assert [str(w.message) for w in caught if "EXIF" in str(w.message)] == [
        f"{bad}: Corrupt EXIF data.  Expecting to read 12 bytes but only got 0. "
    ]


def test_a_directory_symlink_loop_is_reported(tmp_path: Path) -> None:
    from annotator.store.imagefile import walk_images

    write_jpeg(tmp_path / "top" / "sub" / "a.jpg")
    os.symlink("..", tmp_path / "top" / "sub" / "up")  # sub/up/sub/up/... for ever
    os.symlink(tmp_path / "top" / "sub", tmp_path / "top" / "same")  # a second way in: no loop
    found, bad = walk_images(tmp_path / "top")
    assert [p.name for p in found] == ["a.jpg"]  # walked once
    assert [(Path(b.path).name, b.reason) for b in bad] == [
        ("up", f"directory symlink loop (leads back to {tmp_path / 'top'})")
    ]
