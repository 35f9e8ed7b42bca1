"""Reading what the store needs from an image file without decoding its pixels (but for a
small decode for its perceptual hash, on request): the SHA-256 of its bytes, its size as
displayed (EXIF orientation applied), the orientation tag, and whether the file is a whole,
sane image. Every failure becomes a `BadImage` with the path and the reason."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)
MAX_PIXELS = 178_956_970  # Pillow's own decompression-bomb threshold
ORIENTATION_TAG = 0x0112
SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})
# Reading headers under one lock: catching a header's warnings (process-wide state in Python)
# from several threads at once would lose them or attribute them to the wrong file.
_HEADER_LOCK = threading.Lock()


class ImageWarning(UserWarning):
    """Something odd in a file that is still stored (a corrupt EXIF block), naming the file."""


class BadImage(Exception):
    """A file that cannot enter the store, with the reason."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ImageInfo:
    path: Path
    sha256: str
    width: int  # as displayed
    height: int  # as displayed
    orientation: int
    size_bytes: int
    phash: int | None = None  # perceptual hash (signed 64-bit), when asked for and computable


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except PermissionError as exc:
        raise BadImage(path, "unreadable: permission denied") from exc
    except IsADirectoryError as exc:
        raise BadImage(path, "is a directory") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise BadImage(path, "symlink loop") from exc
        if exc.errno == errno.ENOENT:
            raise BadImage(path, "missing (or a broken symlink)") from exc
        raise BadImage(path, f"unreadable: {exc.strerror or exc}") from exc
    if not data:
        raise BadImage(path, "empty file (0 bytes)")
    return data


def _check_complete(path: Path, fmt: str | None, data: bytes) -> None:
    """Catch truncated files from their last bytes, without decoding."""
    tail = data[-1024:].rstrip(b"\x00\r\n ")
    if fmt == "JPEG" and not tail.endswith(b"\xff\xd9"):
        raise BadImage(path, "truncated JPEG (no end-of-image marker)")
    if fmt == "PNG" and b"IEND" not in data[-64:]:
        raise BadImage(path, "truncated PNG (no IEND chunk)")


def probe(path: Path, max_pixels: int = MAX_PIXELS, phash: bool = False) -> ImageInfo:
    """Hash and inspect `path`; raises BadImage with the reason when it cannot be stored.
    With `phash`, also its perceptual hash (decoding JPEGs at a reduced scale; None when the
    pixels cannot be decoded: `dupes` retries and reports)."""
    from PIL import Image, UnidentifiedImageError

    data = read_bytes(path)
    try:
        with _HEADER_LOCK, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            fmt = img.format
            orientation = _orientation(img)
    except Image.DecompressionBombError as exc:
        raise BadImage(path, f"decompression bomb ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise BadImage(path, "not an image (unknown format)") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        kind = "truncated image" if "runcat" in str(exc) else "corrupt image"
        raise BadImage(path, f"{kind} ({exc})") from exc
    _name_warnings(path, caught)
    if width <= 0 or height <= 0:
        raise BadImage(path, f"invalid size {width}x{height}")
    if width * height > max_pixels:
        raise BadImage(path, f"decompression bomb: {width}x{height} exceeds {max_pixels} pixels")
    _check_complete(path, fmt, data)
    if orientation in SWAPPING_ORIENTATIONS:
        width, height = height, width
    digest = hashlib.sha256(data).hexdigest()
    perceptual = _phash(img) if phash else None
    return ImageInfo(path, digest, width, height, orientation, len(data), perceptual)


def _name_warnings(path: Path, caught: list[warnings.WarningMessage]) -> None:
    """Pillow's warnings on a file's header (`Corrupt EXIF data...`) say nothing of the file:
    emitted again, naming it."""
    for warning in caught:
        warnings.warn(ImageWarning(f"{path}: {warning.message}"), stacklevel=3)


def preload_phash() -> None:
    """Import what the perceptual hash needs (imagehash, numpy, SciPy: most of a second), e.g.
    before forking workers that would each import it again."""
    import PIL.Image  # noqa: F401

    with contextlib.suppress(ImportError):
        import imagehash  # noqa: F401


def _phash(img: object) -> int | None:
    from annotator.store.dupes import phash_of

    try:
        return phash_of(img)
    except Exception:  # pixels that do not decode: the file is stored, its hash left to dupes
        return None


def _orientation(img: object) -> int:
    try:
        value = img.getexif().get(ORIENTATION_TAG, 1)  # type: ignore[attr-defined]
    except Exception:  # a broken EXIF block: treat as upright
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def walk_images(root: Path) -> tuple[list[Path], list[BadImage]]:
    """Image files under `root` (recursive, following directory symlinks once each),
    sorted; plus the entries that could not be walked (symlink loops, unreadable folders)."""
    bad: list[BadImage] = []
    found = list(iter_images(root, bad))
    found.sort()  # already in this order (`iter_images`)
    return found, bad


def iter_images(root: Path, bad: list[BadImage]) -> Iterator[Path]:
    """`walk_images` as a stream, in the same (sorted) order: depth first, each folder's
    entries by name, so only the names of the folders on the way down are held (a million
    files in one folder: their names, 70 MB, not a million paths). Entries that could not be
    walked are appended to `bad`. A folder reached two ways (directory symlinks) is walked
    at the first."""
    seen: set[tuple[int, int]] = set()
    stack: list[tuple[str, Iterator[str], set[str]]] = []
    _enter(root, seen, bad, stack)
    while stack:
        folder, names, dirs = stack[-1]
        name = next(names, None)
        if name is None:
            stack.pop()
        elif name in dirs:
            _enter(Path(os.path.join(folder, name)), seen, bad, stack)
        else:
            yield Path(os.path.join(folder, name))


def _enter(
    folder: Path,
    seen: set[tuple[int, int]],
    bad: list[BadImage],
    stack: list[tuple[str, Iterator[str], set[str]]],
) -> None:
    """Push `folder`'s image names and subfolders, sorted, onto `stack` (unless it is walked
    already or cannot be read)."""
    try:
        st = folder.stat()
        if (st.st_dev, st.st_ino) in seen:
            _report_loop(folder, bad)
            return
        seen.add((st.st_dev, st.st_ino))
        names: list[str] = []
        dirs: set[str] = set()
        with os.scandir(folder) as entries:
            for entry in entries:
                _visit(Path(entry.path), entry, names, dirs, bad)
    except OSError as exc:
        bad.append(BadImage(folder, _os_reason(exc)))
        return
    names.sort()
    stack.append((os.fspath(folder), iter(names), dirs))


def _report_loop(folder: Path, bad: list[BadImage]) -> None:
    """A directory symlink that leads back to a folder holding it is reported as a loop (a
    second link to a folder already walked is not a loop: it is skipped silently)."""
    if not folder.is_symlink():
        return
    target, parent = folder.resolve(), folder.parent.resolve()
    if target == parent or target in parent.parents:
        bad.append(BadImage(folder, f"directory symlink loop (leads back to {target})"))


def _visit(
    path: Path, entry: os.DirEntry[str], names: list[str], dirs: set[str], bad: list[BadImage]
) -> None:
    try:
        if entry.is_dir(follow_symlinks=True):
            names.append(entry.name)
            dirs.add(entry.name)
            return
        if entry.is_symlink() and not path.exists():
            path.stat()  # raises ELOOP for a loop, ENOENT for a dangling link
    except OSError as exc:
        if is_image_name(path) or exc.errno == errno.ELOOP:
            bad.append(BadImage(path, _os_reason(exc)))
        return
    if is_image_name(path) and not entry.name.startswith("."):
        names.append(entry.name)


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    if exc.errno == errno.EACCES:
        return "unreadable: permission denied"
    if exc.errno == errno.ENOENT:
        return "missing (or a broken symlink)"
    return f"unreadable: {exc.strerror or exc}"
