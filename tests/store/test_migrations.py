"""The Alembic environment and the models agree, and upgrades keep data."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, func, insert, text

from annotator.errors import SchemaOutdatedError
from annotator.store.db import alembic_config, head_revision, make_engine, open_store, upgrade
from annotator.store.models import Base


def _engine(tmp_path: Path, name: str = "m.db"):  # type: ignore[no-untyped-def]
    return make_engine(f"sqlite:///{tmp_path / name}")


def test_upgrade_head_matches_models_exactly(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    upgrade(engine)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []
    engine.dispose()


def test_models_schema_has_named_constraints(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    upgrade(engine)
    with engine.connect() as conn:
        ddl = conn.execute(text("SELECT sql FROM sqlite_master WHERE name='annotations'")).scalar()
    assert "CONSTRAINT ck_annotations_box" in ddl
    assert "CONSTRAINT fk_annotations_dataset_id_task_datasets" in ddl
    engine.dispose()


def _revisions(engine) -> list[str]:  # type: ignore[no-untyped-def]
    script = ScriptDirectory.from_config(alembic_config(engine))
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def _fill_first_revision(engine) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Rows written the way the first revision's tables look (reflected, not the models)."""
    meta = MetaData()
    meta.reflect(engine)
    t = meta.tables
    now = func.current_timestamp()
    with engine.begin() as conn:
        conn.execute(insert(t["datasets"]).values(id=1, name="pets", task="detection",
                                                  root="/data", created_at=now))  # fmt: skip
        conn.execute(insert(t["classes"]).values(id=1, dataset_id=1, name="cat", position=0,
                                                 color="#ff0000"))  # fmt: skip
        conn.execute(insert(t["images"]).values(
            id=1, dataset_id=1, path="a.jpg", sha256="0" * 64, width=10, height=20,
            orientation=6, size_bytes=123, split="train", status="labeled", revision=3,
            added_at=now, updated_at=now))  # fmt: skip
        conn.execute(insert(t["annotations"]).values(
            id=1, dataset_id=1, task="detection", image_id=1, class_id=1, kind="box", x=1.5,
            y=2.5, w=3.0, h=4.0, iscrowd=False, source="human", review="accepted",
            author="ann", created_at=now, updated_at=now, revision=2))  # fmt: skip
        conn.execute(insert(t["history"]).values(
            id=1, dataset_id=1, image_id=1, annotation_id=1, action="create", before=None,
            after={"x": 1.5}, author="ann", created_at=now, group_id="g1", group_kind="do"))  # fmt: skip
    return {name: 1 for name in ("datasets", "classes", "images", "annotations", "history")}


def test_upgrade_from_first_revision_keeps_data(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    first = _revisions(engine)[0]
    upgrade(engine, first)
    expected = _fill_first_revision(engine)
    upgrade(engine)
    with engine.connect() as conn:
        for table, count in expected.items():
            assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() == count
        row = conn.execute(text("SELECT x, y, w, h, revision FROM annotations")).one()
        assert tuple(row) == (1.5, 2.5, 3.0, 4.0, 2)
        img = conn.execute(text("SELECT orientation, split, status FROM images")).one()
        assert tuple(img) == (6, "train", "labeled")
    engine.dispose()


def test_database_behind_says_run_db_upgrade(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    engine = _engine(tmp_path)
    revisions = _revisions(engine)
    assert len(revisions) >= 2, "the second revision proves the upgrade path"
    upgrade(engine, revisions[0])
    engine.dispose()
    url = f"sqlite:///{tmp_path / 'm.db'}"
    with pytest.raises(SchemaOutdatedError, match="run: annotator db upgrade"):
        open_store(url)
    from click.testing import CliRunner

    from annotator.main import cli

    result = CliRunner().invoke(cli, ["--db", url, "stats", "pets"])
    assert result.exit_code == 2
    assert "run: annotator db upgrade" in result.stderr
    result = CliRunner().invoke(cli, ["--db", url, "db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert f"to {head_revision(make_engine(url))}" in result.stdout
    open_store(url).close()


def test_database_from_newer_annotator_is_refused(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(SchemaOutdatedError, match="newer annotator"):
        open_store(f"sqlite:///{tmp_path / 'm.db'}")


def test_the_recorded_revisions_are_the_migrations(tmp_path: Path) -> None:
    """Opening a store checks the revision against a list recorded in the package (no Alembic
    import): adding a migration without recording it fails here."""
    from annotator.store import revisions

    engine = _engine(tmp_path)
    assert tuple(_revisions(engine)) == revisions.KNOWN
    assert head_revision(engine) == revisions.HEAD
    engine.dispose()
