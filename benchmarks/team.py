"""Benchmark: a team on one PostgreSQL database.

1. Lease claim latency: N concurrent claimers (processes) on a dataset of M image rows, each
   claiming the next images of the labelling queue the way the app does (a keyset query that
   skips others' leases, then the claim: FOR UPDATE SKIP LOCKED, a fresh check, the insert) and
   of a model run the way `prelabel --worker` does. Prints p50/p95 per claim. Goal: p95 <= 20 ms
   with 32 claimers at 100,000 images. Each claimer claims back to back, so with more claimers
   than cores the figure is mostly the clients' own CPU queue: the client CPU per claim is
   printed, and (when the server's log can be read here: local server, superuser) the server's
   time per claim transaction, the sum of its statements' durations as the server logs them.
   `--think S`: each claimer waits a random 0..2S seconds between claims, as people look at an
   image between moves (the app claims on every move). The goal is measured at the default
   0.5 s: 32 claimers then claim about 60 times a second, twice the pace of 32 people who each
   label an image a second. `--think 0` (also run by default) is the saturation figure: every
   claimer claims back to back, so the latency is the 2 cores' queue of 32 processes, not the
   claim; it and the claims per second show the capacity.
2. Shared prelabelling: the wall time of one `annotator prelabel --worker` process against two,
   over the same images with a stub model that sleeps per batch (the model's time dominates, as
   with a real one on a GPU). Prints the speed-up of two over one. Goal: >= 1.8x.

Needs a PostgreSQL server: `--db` or $ANNOTATOR_TEST_PG_URL (`.ci/start-postgres` prints one);
each part creates and drops its own database.

    .venv/bin/python benchmarks/team.py [--images 100000] [--claimers 32] [--claims 40]
        [--worker-images 480] [--batch-size 16] [--sleep 0.25] [--part claims|workers]
        [--think 0.5,0]

`--claimers 1,4,32` (and `--think 1,0.5,0.1,0`) measure several counts (paces) on the same
database.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WARM_UP = 2  # each claimer's first claims (connecting, compiling) are not counted
sys.path.insert(0, str(REPO))


@contextmanager
def scratch_db(base: str) -> Iterator[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def fill_rows(url: str, n: int) -> int:
    """A dataset of `n` image rows (leases look at rows only) and a run; the dataset id."""
    from sqlalchemy import insert

    from annotator.store.datasets import create_dataset
    from annotator.store.db import open_store
    from annotator.store.models import Image, ModelRun

    store = open_store(url)
    with store.session() as s:
        ds = create_dataset(s, "team", "classification", ["a", "b"])
        for start in range(0, n, 10_000):
            rows = [dict(dataset_id=ds.id, path=f"{i:07d}.jpg", sha256=f"{i:064x}", width=8,
                         height=8, orientation=1, size_bytes=1, status="unlabeled", revision=1)
                    for i in range(start, min(n, start + 10_000))]  # fmt: skip
            s.execute(insert(Image), rows)
        s.add(ModelRun(dataset_id=ds.id, model="bench", params={}))
        s.commit()
        ds_id = ds.id
    with store.engine.connect() as conn:  # what autovacuum does after a bulk load
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    store.close()
    return ds_id


def _server_cpu(pid: int) -> float:
    """CPU seconds the server process `pid` has used (a local server; 0 when unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def claimer(
    args: tuple[str, int, str, int, str, float],
) -> tuple[list[float], float, float, float]:
    """One claimer process: `claims` claims of the given kind; seconds per claim, the
    client's and its server process's CPU seconds the claims after the warm-up took, and its
    claims per second after the warm-up."""
    url, ds_id, who, claims, kind, think = args
    import random

    from sqlalchemy import update

    from annotator.store import leases
    from annotator.store import queue as q
    from annotator.store.db import open_store
    from annotator.store.models import Image

    store = open_store(url, create=False)
    spec = q.QueueSpec("unlabeled", "path", holder=who)
    times: list[float] = []
    cpu = server = 0.0
    since = time.perf_counter()
    with store.session() as s:
        backend = int(s.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
        s.commit()
        for _ in range(claims):
            time.sleep(random.uniform(0, 2 * think))
            server -= _server_cpu(backend)
            start, cpu_start = time.perf_counter(), time.process_time()
            if kind == "label":
                found = None
                while found is None or not leases.claim(s, ds_id, [found], who, ttl_s=600):
                    found = q.first(s, ds_id, spec)
            else:
                leases.claim_run_batch(s, ds_id, 1, who, 8, ttl_s=600)
            times.append(time.perf_counter() - start)
            cpu += time.process_time() - cpu_start
            server += _server_cpu(backend)
            if len(times) == WARM_UP:  # the first claims warm the connection up: left out
                cpu = server = 0.0
                since = time.perf_counter()
            if kind == "label":  # labelled: it leaves the unlabeled queue (not timed)
                s.execute(update(Image).where(Image.id == found).values(status="labeled"))
                s.commit()
    rate = (len(times) - WARM_UP) / (time.perf_counter() - since)
    store.close()
    return times, cpu, server, rate


def _percentiles(values: list[float]) -> str:
    flat = sorted(values)
    p50, p95 = statistics.median(flat) * 1000, flat[int(len(flat) * 0.95)] * 1000
    return f"p50 {p50:.1f} ms, p95 {p95:.1f} ms"


def claim_latency(base: str, images: int, counts: list[int], claims: int,
                  thinks: list[float]) -> None:  # fmt: skip
    with scratch_db(base) as url:
        ds_id = fill_rows(url, images)
        log = ServerLog.open(url)
        for think in thinks:
            for claimers in counts:
                for kind in ("label", "run"):
                    _claims_part(url, ds_id, images, claimers, claims, kind, think, log)


def _claims_part(url: str, ds_id: int, images: int, claimers: int, claims: int, kind: str,
                 think: float, log: ServerLog | None) -> None:  # fmt: skip
    jobs = [(url, ds_id, f"c{claimers}-{think:g}-{i}", claims, kind, think)
            for i in range(claimers)]  # fmt: skip
    start = log.offset() if log else 0
    with mp.get_context("spawn").Pool(claimers) as pool:
        per = pool.map(claimer, jobs)
    flat = [t for ts, *_ in per for t in ts[WARM_UP:]]
    cpu = sum(c for _, c, *_ in per) / len(flat) * 1000
    server = sum(c for _, _, c, _ in per) / len(flat) * 1000
    rate = sum(r for *_, r in per)
    pace = f"think 0..{2 * think:g} s" if think else "back to back"
    print(
        f"claim latency ({kind}, {claimers} claimers, {pace}, {images:,} images, "
        f"{os.cpu_count()} cores): {_percentiles(flat)} over {len(flat)} claims, "
        f"{rate:.0f} claims/s; CPU per claim: client {cpu:.2f} ms, server {server:.2f} ms"
    )
    if log:
        logged = log.claim_seconds(start)
        print(f"  server time per claim transaction: {_percentiles(logged)} "
              f"over {len(logged)} claims")  # fmt: skip


class ServerLog:
    """The local server's log, with every statement's duration logged for the scratch database
    (`ALTER DATABASE ... SET log_min_duration_statement = 0`, which needs a superuser)."""

    LINE = re.compile(r"\[(\d+)\] \S*@(\S+) LOG:  duration: ([\d.]+) ms  [^:]*: (.*)")

    def __init__(self, path: Path, database: str) -> None:
        self.path, self.database = path, database

    @classmethod
    def open(cls, url: str) -> ServerLog | None:
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        found = sorted(Path("/var/log/postgresql").glob("postgresql-*-main.log"))
        if not found or not os.access(found[-1], os.R_OK):
            print("  (no server log readable here: server times left out)")
            return None
        name = make_url(url).database
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{name}" SET log_min_duration_statement = 0'))
        except Exception as exc:  # not a superuser: no server times
            print(f"  (server times left out: {str(exc).splitlines()[0]})")
            return None
        finally:
            engine.dispose()
        return cls(found[-1], str(name))

    def offset(self) -> int:
        return self.path.stat().st_size

    def claim_seconds(self, start: int) -> list[float]:
        """Seconds the server spent on each claim transaction logged since `start` (BEGIN to
        COMMIT, its statements' durations summed; the untimed status updates left out)."""
        with self.path.open("rb") as f:
            f.seek(start)
            lines = f.read().decode(errors="replace").splitlines()
        per_pid: dict[str, list[list[tuple[float, str]]]] = {}
        for line in lines:
            m = self.LINE.search(line)
            if not m or m.group(2) != self.database:
                continue
            txs = per_pid.setdefault(m.group(1), [[]])
            txs[-1].append((float(m.group(3)) / 1000, m.group(4)))
            if m.group(4).strip().upper() == "COMMIT":
                txs.append([])
        out = []
        for txs in per_pid.values():
            claims = [tx for tx in txs if tx and tx[-1][1].strip().upper() == "COMMIT"
                      and not any(sql.startswith(("UPDATE images", "SELECT pg_backend_pid"))
                                  for _, sql in tx)]  # fmt: skip
            out += [sum(d for d, _ in tx) for tx in claims[WARM_UP:]]
        return out


def write_images(folder: Path, n: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (16, 12), (i % 256, i // 256, 40)).save(folder / f"{i:05d}.png")


def shared_run(url: str, folder: Path, workers: int, batch: int, sleep: float) -> float:
    from annotator.store.datasets import create_dataset
    from annotator.store.db import open_store
    from annotator.store.images import add_images

    store = open_store(url)
    with store.session() as s:
        ds = create_dataset(s, "team", "classification", ["cat", "dog", "bird"], folder)
        add_images(s, ds, [folder])
    store.close()
    env = {**os.environ, "PYTHONPATH": str(REPO), "BENCH_SLEEP": str(sleep)}
    cmd = [
        sys.executable,
        "-m",
        "annotator",
        "--db",
        url,
        "prelabel",
        "team",
        "--model",
        "benchmarks.team:sleepy",
        "--batch-size",
        str(batch),
        "--workers",
        "0",
        "--worker",
    ]
    procs = [subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE) for _ in range(workers)]  # fmt: skip
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            raise SystemExit(err.decode())
    return _span(url)


def _span(url: str) -> float:
    """Seconds from the first batch written to the last (process start-up left out: it is
    the same for one worker or many, and on a loaded machine it would swamp the comparison)."""
    from sqlalchemy import func, select

    from annotator.store.db import open_store
    from annotator.store.models import RunImage

    store = open_store(url, create=False)
    with store.session() as s:
        first, last = s.execute(select(func.min(RunImage.processed_at),
                                       func.max(RunImage.processed_at))).one()  # fmt: skip
    store.close()
    return float((last - first).total_seconds())


def sleepy() -> tuple[object, list[str]]:
    """A classifier that sleeps $BENCH_SLEEP seconds per batch (stands in for a real model)."""
    import torch
    from torch import nn

    class Sleepy(nn.Module):
        def forward(self, batch: torch.Tensor) -> torch.Tensor:
            time.sleep(float(os.environ.get("BENCH_SLEEP", "0.25")))
            return torch.zeros(batch.shape[0], 3)

    return Sleepy(), ["cat", "dog", "bird"]


def worker_speedup(base: str, n: int, batch: int, sleep: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "imgs"
        write_images(folder, n)
        took = {}
        for workers in (1, 2):
            with scratch_db(base) as url:
                took[workers] = shared_run(url, folder, workers, batch, sleep)
        print(f"prelabel --worker over {n} images, batch {batch}, {sleep} s per batch, first to "
              f"last batch: 1 worker {took[1]:.1f} s, 2 workers {took[2]:.1f} s, "
              f"speed-up {took[1] / took[2]:.2f}x (goal >= 1.8x)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=os.environ.get("ANNOTATOR_TEST_PG_URL"))
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--claimers", default="32", help="a count, or several: 1,4,32")
    parser.add_argument("--claims", type=int, default=40)
    parser.add_argument("--worker-images", type=int, default=480)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--sleep", type=float, default=0.25)
    parser.add_argument("--part", choices=("claims", "workers"), help="only this part")
    parser.add_argument(
        "--think", default="0.5,0", help="mean seconds between a claimer's claims; several: 0.5,0"
    )
    args = parser.parse_args()
    if not args.db:
        raise SystemExit("a PostgreSQL URL is needed: --db or $ANNOTATOR_TEST_PG_URL")
    if args.part != "workers":
        counts = [int(n) for n in args.claimers.split(",")]
        thinks = [float(t) for t in args.think.split(",")]
        claim_latency(args.db, args.images, counts, args.claims, thinks)
    if args.part != "claims":
        worker_speedup(args.db, args.worker_images, args.batch_size, args.sleep)


if __name__ == "__main__":
    main()
