"""box suspects: a suspect flag on a detection dataset names its kind (a box missing from the
labels, a box whose class looks swapped, a badly placed box) and the box in question

`suspect_flags.kind` is NULL for a whole-image label's flag; `x, y, w, h` is the box (displayed
pixels): the predicted box a missing flag proposes, else the labelled box in doubt.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 02:10:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KIND = "kind IS NULL OR kind IN ('missing', 'swapped', 'misplaced')"


def upgrade() -> None:
    with op.batch_alter_table('suspect_flags', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=9), nullable=True))
        for name in ('x', 'y', 'w', 'h'):
            batch_op.add_column(sa.Column(name, sa.Float(), nullable=True))
        batch_op.create_check_constraint(op.f('ck_suspect_flags_kind'), KIND)


def downgrade() -> None:
    op.execute("DELETE FROM suspect_flags WHERE kind IS NOT NULL")  # no place before
    with op.batch_alter_table('suspect_flags', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_suspect_flags_kind'), type_='check')
        for name in ('h', 'w', 'y', 'x', 'kind'):
            batch_op.drop_column(name)
