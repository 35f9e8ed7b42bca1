"""Probing the images of a bulk import ahead of its writer: the next batches are hashed and
their headers read while the current one is written.

Reading a header with Pillow holds the GIL (and our header lock), so threads overlap only the
file reads and the hashing; a large job (`PROCESS_MIN` images or more, on a machine with more
than one CPU; `PHASH_PROCESS_MIN` when the perceptual hash is asked for, which decodes the
image) is probed by worker processes instead, in parts of `PART` paths. A worker sends
back plain tuples (not exceptions) and the warnings Pillow gave, which are emitted again here,
naming the file, exactly as a probe in this process emits them. Store-only."""

from __future__ import annotations

import multiprocessing
import os
import signal
import warnings
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from annotator.store.imagefile import BadImage, ImageInfo, ImageWarning, preload_phash, probe

PROCESS_MIN = 4000
PHASH_PROCESS_MIN = 64  # with the perceptual hash (a decode) worker processes pay off early
PART = 200
AHEAD = 2  # batches probed ahead of the one being written
Result = ImageInfo | BadImage


def probe_batches(
    batches: Iterable[Sequence[str]], total: int, workers: int, phash: bool = False
) -> Iterator[list[Result]]:
    """The probe results of each batch of paths, in order, probing ahead; with `phash`, each
    image's perceptual hash too (computed where it is probed: in the worker processes of a
    large job, in parallel)."""
    cpus = os.cpu_count() or 1
    least = PHASH_PROCESS_MIN if phash else PROCESS_MIN
    processes = total >= least and cpus > 1 and workers > 1
    pool: Executor = (
        ProcessPoolExecutor(
            min(workers, cpus),
            mp_context=multiprocessing.get_context("fork"),
            initializer=die_with_parent,
        )
        if processes
        else ThreadPoolExecutor(max_workers=max(1, workers))
    )
    if processes and phash:
        preload_phash()  # imported once here, not once in each forked worker
    submit = partial(_submit_parts if processes else _submit_each, phash=phash)
    source = iter(batches)
    with pool:
        pending: deque[list[Future[Any]]] = deque()
        while True:
            while len(pending) < AHEAD + 1 and (batch := next(source, None)) is not None:
                pending.append(submit(pool, batch))
            if not pending:
                return
            futures = pending.popleft()
            yield _collect(futures) if processes else [f.result() for f in futures]


def die_with_parent() -> None:
    """A worker is killed with the import (a kill -9 of it leaves no worker behind: they would
    wait for work forever). Linux's PR_SET_PDEATHSIG; elsewhere the workers outlive it."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return
    if os.getppid() == 1:  # pragma: no cover - the import died before the call
        os._exit(0)


def _submit_each(pool: Executor, paths: Sequence[str], phash: bool) -> list[Future[Any]]:
    return [pool.submit(probe_one, path, phash) for path in paths]


def _submit_parts(pool: Executor, paths: Sequence[str], phash: bool) -> list[Future[Any]]:
    parts = (list(paths[i : i + PART]) for i in range(0, len(paths), PART))
    extra = (True,) if phash else ()  # the worker's default otherwise
    return [pool.submit(_probe_part, part, *extra) for part in parts]


def probe_one(path: str, phash: bool = False) -> Result:
    """`probe`, with a bad file (or an image library failing in a way of its own) as the
    `BadImage` that says why."""
    try:
        return probe(Path(path), phash=phash)
    except BadImage as bad:
        return bad
    except Exception as exc:
        return BadImage(Path(path), f"cannot read image ({type(exc).__name__}: {exc})")


def _probe_part(paths: list[str], phash: bool = False) -> list[tuple[Any, ...]]:
    """In a worker: each path's result as a tuple, with the warnings it raised."""
    out: list[tuple[Any, ...]] = []
    for path in paths:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = probe_one(path, phash)
        said = [str(w.message) for w in caught]
        if isinstance(result, BadImage):
            out.append(("bad", str(result.path), result.reason, said))
        else:
            info = result
            out.append(("ok", info.sha256, info.width, info.height, info.orientation,
                        info.size_bytes, path, info.phash, said))  # fmt: skip
    return out


def _collect(futures: list[Future[Any]]) -> list[Result]:
    results: list[Result] = []
    for future in futures:
        for row in future.result():
            for message in row[-1]:
                warnings.warn(ImageWarning(message), stacklevel=3)
            if row[0] == "bad":
                results.append(BadImage(row[1], row[2]))
            else:
                _, sha, width, height, orientation, size, path, phash, _ = row
                results.append(ImageInfo(Path(path), sha, width, height, orientation, size, phash))
    return results
