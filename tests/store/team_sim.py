"""One simulated annotator for the team soak test, run as its own process:
`python -m tests.store.team_sim URL DATASET USER SECONDS OUT.json`. It drives the labelling
app's backend (the use cases the TUI calls: move through the unlabeled queue, which leases
images, then assign a class at the revision shown), with a think time between actions, and
writes what it was served, what it committed and every error it met."""

from __future__ import annotations

import json
import random
import sys
import time

from annotator.errors import ConflictError
from annotator.store import edits
from annotator.store import queue as q
from annotator.store.db import open_store
from annotator.tui.backend import Backend, Change


def main(url: str, dataset: str, user: str, seconds: float, out: str) -> None:
    store = open_store(url, create=False)
    backend = Backend(store, user)
    info = backend.dataset(dataset)
    spec = q.QueueSpec("unlabeled", "path")
    rng = random.Random(user)
    served: list[int] = []
    committed: list[tuple[int, int]] = []
    stale: list[str] = []
    errors: list[str] = []
    view = backend.find_view(info.id, spec, "first", None)
    deadline = time.monotonic() + seconds
    while view is not None and time.monotonic() < deadline:
        served.append(view.id)
        time.sleep(rng.uniform(0.05, 0.25))  # looking at the image
        cls = rng.choice(info.classes)
        _label(backend, view, cls.id, committed, stale, errors)
        try:
            view = backend.find_view(info.id, spec, "step", view.id, 1) or backend.find_view(
                info.id, spec, "first", None
            )
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            break
    backend.release()
    store.close()
    with open(out, "w") as fh:
        json.dump({"served": served, "committed": committed, "stale": stale,
                   "errors": errors}, fh)  # fmt: skip


def _label(backend: Backend, view: q.ImageView, class_id: int, committed: list[tuple[int, int]],
           stale: list[str], errors: list[str]) -> None:  # fmt: skip
    """Assign a class as the app does: a refusal (the image changed since it was shown, e.g. a
    model run's proposals arrived) shows the fresh state, and the person presses the key again."""
    revision = view.revision
    for _ in range(5):
        try:
            backend.apply(Change(view.id, revision, "assign", edits.AssignClass(view.id, class_id)))
            committed.append((view.id, class_id))
            return
        except ConflictError as exc:
            stale.append(str(exc))
            backend.forget(view.id)
            revision = backend.view(view.id).revision
        except Exception as exc:  # everything else is a failure the test reports
            errors.append(f"{type(exc).__name__}: {exc}")
            return


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5])
