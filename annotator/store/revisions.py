"""The schema revisions this annotator knows, recorded when the migrations were written, so
opening a store checks the database's revision with one query and without importing Alembic
(Alembic is loaded only to upgrade). `tests/store/test_migrations.py` fails when this list and
`migrations/versions/` disagree. No imports beyond the standard library."""

from __future__ import annotations

KNOWN = ("0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009")
HEAD = KNOWN[-1]
