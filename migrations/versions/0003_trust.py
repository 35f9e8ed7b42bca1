"""annotation ids never reused, polygon points, image flags

Annotations get AUTOINCREMENT on SQLite (the table is rebuilt; nothing references it), so an id
deleted once is never handed out again and a mirror that cites an id cannot hit another label.
PostgreSQL's sequences never reuse ids already. `annotations.points` keeps a polygon's points;
`images.flag` says why a person must look at an image (an import refused its labels).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 23:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    kwargs = {"recreate": "always", "table_kwargs": {"sqlite_autoincrement": True}} if sqlite else {}
    with op.batch_alter_table('annotations', schema=None, **kwargs) as batch_op:
        batch_op.add_column(sa.Column('points', sa.JSON(), nullable=True))
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.add_column(sa.Column('flag', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_column('flag')
    with op.batch_alter_table('annotations', schema=None) as batch_op:
        batch_op.drop_column('points')
