"""The FiftyOne side of the mirror: importing FiftyOne lazily (a missing install becomes a
MissingDependencyError that says how to install the extra), the mirror's names, field layout and
schema, and opening or creating the persistent FiftyOne dataset that mirrors a store dataset;
FiftyOne's services as this process sees them (its own mongod's deprecation notice kept out of
the user's way, its App server and database service stopped on request). Holds no store logic
beyond the dataset's name, task and classes."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from annotator.errors import ConflictError, MissingDependencyError
from annotator.store.models import Dataset

INSTALL_HINT = "pip install 'annotator[review]'"
DATABASE_LOGGER = "fiftyone.core.odm.database"
BUNDLED_NOTICE = "You are running the oldest supported major version of MongoDB"
SERVICE_FLAG = "--51-service"  # FiftyOne's service wrapper: main.py --51-service NAME ...
PREFIX = "annotator-"
GROUND_TRUTH, PRELABELS, REJECTED = "ground_truth", "prelabels", "rejected"
LABEL_FIELDS = (GROUND_TRUTH, PRELABELS, REJECTED)
FIELD_FOR_REVIEW = {"accepted": GROUND_TRUTH, "pending": PRELABELS, "rejected": REJECTED}
ID, REVISION = "annotator_id", "annotator_revision"
PUSHED = "annotator_labels"  # sample field: each label as the last push wrote it
TOKEN_KEY = "annotator_token"
DISAGREEMENT = "disagreement"
SUSPECT, SUGGESTED = "suspect_score", "suggested_label"  # an open suspect flag, worst first

# tags set in the App that pull turns into decisions
LABEL_DECISIONS = {"accept": "accepted", "reject": "rejected", "fix": "pending"}
SAMPLE_DECISIONS = {"skip": "skipped", "relabel": "unlabeled"}
CONFLICT_TAG = "conflict"
FIX_NOTE = "marked 'fix' in FiftyOne"

# label attribute -> FiftyOne field class name
LABEL_ATTRS = {
    ID: "IntField",
    REVISION: "IntField",
    "source": "StringField",
    "model": "StringField",
    "run_id": "IntField",
    "note": "StringField",
    "iscrowd": "BooleanField",
}
SAMPLE_FIELDS = {
    ID: "IntField",
    REVISION: "IntField",
    "split": "StringField",
    "status": "StringField",
    "uncertainty": "FloatField",
    DISAGREEMENT: "BooleanField",
    PUSHED: "DictField",
    SUSPECT: "FloatField",
    SUGGESTED: "StringField",
}


def require_fiftyone() -> Any:
    """The `fiftyone` module, or a MissingDependencyError naming the extra to install."""
    try:
        import fiftyone
    except ImportError as exc:
        raise MissingDependencyError(
            f"reviewing in FiftyOne needs the review extra: {INSTALL_HINT} ({exc})"
        ) from exc
    if fiftyone.config.database_uri is None:
        trust_bundled_database()
    return fiftyone


class _BundledNotice(logging.Filter):
    """Drops FiftyOne's "oldest supported major version" notice, printed on every connection
    to the MongoDB that FiftyOne ships itself; every other record passes (a version mismatch,
    a failed compatibility upgrade, a connection error)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(BUNDLED_NOTICE)


def trust_bundled_database() -> None:
    """Silence the deprecation notice about FiftyOne's bundled mongod (a version it ships, so
    nothing the user can act on). Only that notice: turning `database_validation` off would
    also skip the compatibility-version upgrade FiftyOne makes after a mongod upgrade."""
    logger = logging.getLogger(DATABASE_LOGGER)
    if not any(isinstance(f, _BundledNotice) for f in logger.filters):
        logger.addFilter(_BundledNotice())


def stop_app_servers(grace: float) -> None:
    """End the App servers this process started, quietly and at once. Each one's service
    wrapper is told its parent is done (as FiftyOne does at exit: it then stops the server
    without reporting an error); the server gets SIGTERM too, and SIGKILL after `grace`
    seconds, instead of the web server's own grace period of several seconds."""
    import psutil

    sessions = sys.modules.get("fiftyone.core.session.session")
    known = {s.child.pid: s.child for s in getattr(sessions, "_server_services", {}).values()
             if getattr(s, "child", None) is not None}  # fmt: skip
    for wrapper in _service_wrappers(psutil.Process(), "server"):
        inner = wrapper.children(recursive=True)
        if wrapper.pid in known:
            with contextlib.suppress(OSError, ValueError):
                known[wrapper.pid].stdin.close()
        else:  # caught while starting: it would report the server's end as a failure
            _signal([wrapper], "terminate")
        _signal(reversed(inner), "terminate")  # the deepest first
        _signal(_still_running(inner, grace), "kill")
        _end_wrapper(wrapper, inner, grace, anyway=True)


def _service_wrappers(parent: Any, name: str) -> list[Any]:
    """The child processes of `parent` that are FiftyOne's wrapper of service `name`."""
    import psutil

    found = []
    for child in parent.children():
        with contextlib.suppress(psutil.Error):
            args = child.cmdline()
            if SERVICE_FLAG in args[:-1] and args[args.index(SERVICE_FLAG) + 1] == name:
                found.append(child)
    return found


def _still_running(procs: list[Any], timeout: float, reaped: bool = False) -> list[Any]:
    """Wait up to `timeout` seconds for processes to end; returns those still running. A
    zombie has ended, unless `reaped`: then it counts until its parent has collected it."""
    import psutil

    def running() -> list[Any]:
        alive = []
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                if proc.is_running() and (reaped or proc.status() != psutil.STATUS_ZOMBIE):
                    alive.append(proc)
        return alive

    deadline = time.monotonic() + timeout
    while (alive := running()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return alive


def _end_wrapper(wrapper: Any, inner: list[Any], timeout: float, anyway: bool = False) -> None:
    """Once its processes are collected, a service wrapper has only its own exit left (seconds
    of tearing FiftyOne down on a busy machine): it is ended and collected here. A wrapper
    whose processes still run after `timeout` is left alone (another FiftyOne uses them),
    unless `anyway` (they were killed: it only has not collected them yet)."""
    import psutil

    if _still_running(inner, timeout, reaped=True) and not anyway:
        return
    _signal([wrapper], "terminate")
    with contextlib.suppress(psutil.Error):
        wrapper.wait(max(timeout, 1.0))


def _signal(procs: Iterable[Any], how: str) -> None:
    import psutil

    for proc in procs:
        with contextlib.suppress(psutil.Error):
            getattr(proc, how)()


def close_session_client() -> None:
    """Stop the App session's event listener, so that it neither reconnects to a stopped
    server nor says it will (FiftyOne closes it only after its server has exited)."""
    sessions = sys.modules.get("fiftyone.core.session.session")
    client = getattr(getattr(sessions, "_session", None), "_client", None)
    if client is not None and client.is_open:
        client.close()


def leave_database() -> tuple[Any, list[Any]] | None:
    """Let go of the database service FiftyOne started from this process (its own mongod, used
    when no `database_uri` is configured): disconnect and tell the service this process is
    done; it shuts mongod down once no other FiftyOne process uses it (mongod is never killed).
    Returns the service's wrapper process and its processes, if this process started one."""
    import psutil

    database = sys.modules.get("fiftyone.core.odm.database")
    service = getattr(database, "_db_service", None)
    child = getattr(service, "child", None)
    if database is None or service is None or child is None or getattr(service, "attached", True):
        return None
    try:
        inner = child.children(recursive=True)
    except psutil.Error:
        inner = []
    database._disconnect()
    service.stop()
    return child, inner


def finish_database(left: tuple[Any, list[Any]] | None, timeout: float) -> None:
    """Wait up to `timeout` seconds for the database service left by `leave_database` to stop
    its mongod, then end the wrapper's own slow exit; one still serving others stays."""
    if left is not None:
        _end_wrapper(*left, max(timeout, 0))


@contextmanager
def quiet() -> Iterator[None]:
    """FiftyOne's INFO logging and progress bars off while our own progress is shown."""
    fo = require_fiftyone()
    logger = logging.getLogger("fiftyone")
    level, bars = logger.level, fo.config.show_progress_bars
    logger.setLevel(logging.WARNING)
    fo.config.show_progress_bars = False
    try:
        yield
    finally:
        logger.setLevel(level)
        fo.config.show_progress_bars = bars


def default_name(dataset_name: str) -> str:
    """The FiftyOne dataset that mirrors a store dataset unless told otherwise."""
    return PREFIX + dataset_name


def target_key(fo_name: str) -> str:
    """The SyncState target of a FiftyOne mirror."""
    return f"fiftyone:{fo_name}"


def label_types(task: str) -> dict[str, str]:
    """The FiftyOne label class of each label field for a task."""
    if task == "detection":
        return dict.fromkeys(LABEL_FIELDS, "Detections")
    gt = "Classification" if task == "classification" else "Classifications"
    return {GROUND_TRUTH: gt, PRELABELS: "Classifications", REJECTED: "Classifications"}


def list_path(task: str, field: str) -> str:
    """Where a field's labels live: `field.detections`, `field.classifications` or `field`."""
    kind = label_types(task)[field]
    if kind == "Classification":
        return field
    return f"{field}.{kind.lower()}"


def dataset_exists(fo_name: str) -> bool:
    return bool(require_fiftyone().dataset_exists(fo_name))


def load(fo_name: str) -> Any:
    return require_fiftyone().load_dataset(fo_name)


def open_mirror(ds: Dataset, fo_name: str, token: str | None, full: bool) -> tuple[Any, bool]:
    """The FiftyOne dataset for `ds` and whether it was (re)created. An existing dataset that
    does not carry `token` mirrors something else: refused unless `full`, which replaces it."""
    fo = require_fiftyone()
    if fo.dataset_exists(fo_name):
        fods = fo.load_dataset(fo_name)
        theirs = fods.info.get(TOKEN_KEY)
        if token is not None and theirs == token:
            return fods, False
        if not full:
            raise ConflictError(
                f"FiftyOne dataset {fo_name!r} exists but does not mirror dataset {ds.name!r} "
                "of this database: push with --full to replace it, or pick --fo-dataset"
            )
        fods.delete()
    return create(ds, fo_name), True


def create(ds: Dataset, fo_name: str) -> Any:
    """A new persistent FiftyOne dataset with our schema, classes and colours."""
    fo = require_fiftyone()
    fods = fo.Dataset(fo_name, persistent=True)
    declare_schema(fods, ds.task)
    fods.create_index(ID, unique=True)
    fods.info = {TOKEN_KEY: uuid.uuid4().hex, "annotator_dataset": ds.name, "task": ds.task}
    fods.save()
    return fods


def declare_schema(fods: Any, task: str) -> None:
    """Every field and label attribute we write, declared up front so views and the App's
    sidebar know them even before a value exists."""
    fo = require_fiftyone()
    for name, kind in SAMPLE_FIELDS.items():
        fods.add_sample_field(name, getattr(fo, kind))
    for field, kind in label_types(task).items():
        fods.add_sample_field(field, fo.EmbeddedDocumentField, embedded_doc_type=getattr(fo, kind))
        for attr, attr_kind in LABEL_ATTRS.items():
            fods.add_sample_field(f"{list_path(task, field)}.{attr}", getattr(fo, attr_kind))


def set_classes(fods: Any, ds: Dataset) -> None:
    """The dataset's classes, in order, and their colours in the App."""
    fo = require_fiftyone()
    names = [c.name for c in ds.classes]
    colors = [{"value": c.name, "color": c.color} for c in ds.classes]
    fods.default_classes = names
    fods.app_config.color_scheme = fo.ColorScheme(
        color_by="value",
        fields=[
            {"path": field, "colorByAttribute": "label", "valueColors": colors}
            for field in LABEL_FIELDS
        ],
    )
    fods.save()
