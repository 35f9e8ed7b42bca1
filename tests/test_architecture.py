"""The dependency rules hold: the core never imports the UI, cli and tui never import each
other, and `annotator --help` loads neither torch, fiftyone nor textual and answers fast."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "annotator"
CORE = ("store", "formats", "prelabel", "review")
HEAVY = ("torch", "torchvision", "fiftyone", "textual")


def _imports(path: Path, top_level_only: bool = False) -> set[str]:
    """Absolute module names `path` imports (at module level only, or anywhere)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in tree.body if top_level_only else ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _files(part: str) -> list[Path]:
    root = PACKAGE / part
    return sorted(root.rglob("*.py")) if root.is_dir() else []


def _hits(files: list[Path], banned: tuple[str, ...], top_level_only: bool = False) -> list[str]:
    found = []
    for path in files:
        for name in _imports(path, top_level_only):
            if any(name == b or name.startswith(b + ".") for b in banned):
                found.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    return found


@pytest.mark.parametrize("part", CORE)
def test_core_never_imports_ui(part: str) -> None:
    files = _files(part)
    assert _hits(files, ("textual", "annotator.tui", "annotator.cli", "annotator.main")) == []


def test_store_depends_on_nothing_above_it() -> None:
    above = ("annotator.formats", "annotator.prelabel", "annotator.review")
    assert _hits(_files("store"), above) == []


def test_only_the_store_talks_sql() -> None:
    """Only annotator/store/ (and migrations/, outside the package) imports sqlalchemy; the
    layers above name a session as `annotator.store.types.Session`."""
    above = [p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0] != "store"]
    assert _hits(above, ("sqlalchemy",)) == []


def test_cli_and_tui_never_import_each_other() -> None:
    assert _hits(_files("cli"), ("annotator.tui", "textual")) == []
    assert _hits(_files("tui"), ("annotator.cli",)) == []


def test_heavy_libraries_only_imported_inside_functions() -> None:
    files = [p for p in PACKAGE.rglob("*.py") if "tui" not in p.parts]
    assert (
        _hits(files, ("torch", "torchvision", "fiftyone", "ultralytics"), top_level_only=True) == []
    )


def test_help_is_fast_and_light() -> None:
    code = (
        "import sys, io, contextlib\n"
        "from annotator.main import cli\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    try:\n"
        "        cli.main(['--help'], prog_name='annotator')\n"
        "    except SystemExit:\n"
        "        pass\n"
        "    for name in list(cli.list_commands(None)):\n"
        "        try:\n"
        "            cli.main([name, '--help'], prog_name='annotator')\n"
        "        except SystemExit:\n"
        "            pass\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
        "print('HELP', len(buf.getvalue()))\n"
    )
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - started
    assert "HEAVY []" in out.stdout, out.stdout
    assert elapsed < 3.0, f"help took {elapsed:.2f}s"


def test_every_command_explains_itself() -> None:
    import click

    from annotator.main import cli

    def walk(group: click.Group, ctx: click.Context) -> list[tuple[str, click.Command]]:
        found = []
        for name in group.list_commands(ctx):
            cmd = group.get_command(ctx, name)
            assert cmd is not None
            found.append((name, cmd))
            if isinstance(cmd, click.Group):
                found.extend((f"{name} {n}", c) for n, c in walk(cmd, ctx))
        return found

    ctx = click.Context(cli)
    commands = walk(cli, ctx)
    assert len(commands) >= 6
    missing = [name for name, cmd in commands if not (cmd.help or "").strip()]
    assert missing == []


def _run_loading(db: Path, command: list[str], banned: tuple[str, ...]) -> str:
    """`annotator --db DB COMMAND` run in a fresh interpreter; its output, ending with a line
    `LOADED [...]` naming the modules of `banned` it loaded."""
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['annotator', '--db', {str(db)!r}, *{command!r}]\n"
        "try:\n"
        "    runpy.run_module('annotator', run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        f"print('LOADED', sorted(m for m in {banned!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout


READ_PATH_HEAVY = (*HEAVY, "alembic", "sqlalchemy", "PIL", "numpy", "pydantic", "sklearn", "yaml")
READ_COMMANDS = [
    (["stats", "pets"], ()),
    (["datasets"], ()),
    (["stats", "pets", "--json"], ("rich",)),
]


@pytest.mark.parametrize(
    ("command", "also_not"), READ_COMMANDS, ids=[" ".join(c[0]) for c in READ_COMMANDS]
)
def test_read_commands_load_only_what_they_need(
    tmp_path: Path, command: list[str], also_not: tuple[str, ...]
) -> None:
    """`stats` and `datasets` on a SQLite file read it with the standard library's sqlite3 and
    check the schema with one query: they load neither SQLAlchemy nor Alembic, nor any image,
    model or config library (JSON output not even the table library). What a person waits for
    on every small command is the interpreter, click and one query."""
    from annotator.store.datasets import create_dataset
    from annotator.store.db import open_store

    db = tmp_path / "s.db"
    store = open_store(str(db))
    with store.session() as s:
        create_dataset(s, "pets", "classification", ["cat", "dog"])
    store.close()
    out = _run_loading(db, command, (*READ_PATH_HEAVY, *also_not))
    assert "LOADED []" in out, out
    assert "pets" in out


@pytest.mark.parametrize("fmt", ["coco", "yolo"])
def test_an_export_from_a_sqlite_file_loads_no_sqlalchemy_nor_pydantic(
    tmp_path: Path, fmt: str
) -> None:
    """`export` from a SQLite file reads it with the standard library's sqlite3 (the reads of
    `annotator.store.export_reads`): no SQLAlchemy, no Alembic, no model library, and no
    pydantic for its manifest; and the export holds the dataset's labels all the same, with a
    manifest that pydantic reads back."""
    from annotator.formats.manifest import read_manifest
    from annotator.store.datasets import create_dataset
    from annotator.store.db import open_store
    from annotator.store.models import Annotation, Image

    db = tmp_path / "s.db"
    store = open_store(str(db))
    with store.session() as s:
        ds = create_dataset(s, "cars", "detection", ["car", "bus"])
        image = Image(dataset_id=ds.id, path="/data/a.jpg", sha256="0" * 64, width=64, height=48,
                      size_bytes=1000, split="train", status="labeled")  # fmt: skip
        s.add(image)
        s.flush()
        s.add(Annotation(dataset_id=ds.id, task=ds.task, image_id=image.id, kind="box",
                         class_id=ds.classes[1].id, x=4, y=6, w=20, h=10, author="t"))  # fmt: skip
        s.commit()
    store.close()
    dest = tmp_path / "out"
    command = ["export", fmt, "cars", str(dest), "--media", "none"]
    out = _run_loading(db, command, (*HEAVY, "alembic", "sqlalchemy", "pydantic"))
    assert "LOADED []" in out, out
    assert "exported 1 images (0 negatives), 1 labels" in out
    manifest = read_manifest(dest / "manifest.json")
    assert (manifest.dataset, manifest.splits["train"].labels) == ("cars", 1)
    assert manifest.splits["train"].classes == {"bus": 1}
    if fmt == "yolo":
        assert (dest / "labels" / "train" / "a.txt").read_text().split()[0] == "1"  # bus
    else:
        coco = json.loads((dest / "annotations" / "instances_train.json").read_text())
        assert [a["bbox"] for a in coco["annotations"]] == [[4, 6, 20, 10]]
