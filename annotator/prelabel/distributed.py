"""Prelabelling shared by several machines or processes (`annotator prelabel --worker`): each
worker joins the one unfinished run of the same model, weights and parameters, then claims small
batches of images that run has not processed through the store's lease table, runs the model
over them and writes their predictions, until no image is left. A worker killed with SIGKILL
loses nothing: its batch's leases expire and another worker takes the images. The database is
the only coordinator. Depends on the store and the prelabel pipeline."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import replace

from annotator.prelabel.pipeline import (
    PrelabelOptions,
    PrelabelReport,
    _converter,
    _Runner,
    prepare,
)
from annotator.store import leases
from annotator.store import predictions as store
from annotator.store.images import resolve_path
from annotator.store.models import Dataset
from annotator.store.types import ProgressFn, Session

CHUNK_BATCHES = 4  # a claim takes this many forward batches of images
WAIT_S = 2.0  # how often a worker with nothing to claim looks again while others hold images


def worker_name(user: str) -> str:
    """How a worker shows in `annotator runs`: user@host:pid."""
    return f"{user}@{socket.gethostname()}:{os.getpid()}"[:100]


def prelabel_worker(
    session: Session, ds: Dataset, options: PrelabelOptions, worker: str,
    progress: ProgressFn | None = None, ttl_s: float = leases.DEFAULT_TTL_S,
) -> PrelabelReport:  # fmt: skip
    """Take part in the shared run until no image is left (images other workers hold are
    waited for: they are done, or their leases expire and this worker takes them); what this
    worker did."""
    prep = prepare(session, ds, options)
    model, report = prep.model, prep.report
    run = store.join_run(session, ds, model.name, model.weights_sha256, prep.params)
    report.run_id = run.id
    convert = _converter(model, prep.cmap, options.threshold, ds.task, report.dropped)
    local = replace(options, workers=options.workers or 0)
    runner = _Runner(session, run, model, local, prep.device, report, convert)
    scope, size = leases.run_scope(run.id), options.batch_size * CHUNK_BATCHES
    started = time.perf_counter()
    while True:
        ids = leases.claim_run_batch(session, ds.id, run.id, worker, size,
                                     options.only_unlabeled, ttl_s)  # fmt: skip
        if not ids:
            if not leases.remaining(session, ds.id, run.id, options.only_unlabeled):
                break
            time.sleep(min(ttl_s / 4, WAIT_S))  # others hold the rest: done, or expired soon
            continue
        items = [(i.id, str(resolve_path(ds, i.path)), i.width, i.height)
                 for i in store.run_items(session, ds, ids)]  # fmt: skip
        runner.run_over(items, None)
        leases.release(session, ds.id, worker, scope)
        if progress:
            left = leases.remaining(session, ds.id, run.id, options.only_unlabeled)
            progress(report.processed, report.processed + left)
    report.seconds = time.perf_counter() - started
    _finish_if_done(session, ds, run.id, options.only_unlabeled)
    return report


def _finish_if_done(session: Session, ds: Dataset, run_id: int, only_unlabeled: bool) -> None:
    """The last worker out marks the run finished (when no image is left and none is held)."""
    run = store.get_run(session, ds, run_id)
    if run.finished_at is None and not leases.remaining(session, ds.id, run_id, only_unlabeled):
        store.finish_run(session, run)
    else:
        session.commit()
