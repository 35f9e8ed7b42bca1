"""learn: image embeddings

One feature vector per image and embedding model (float16 bytes), what `annotator embed` writes
and `train`, `suspects` and `dupes` read. Trained classifiers are model runs; they need no table.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 23:35:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('embeddings',
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('weights_sha256', sa.String(length=64), nullable=True),
    sa.Column('dim', sa.Integer(), nullable=False),
    sa.Column('vector', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('dim > 0', name=op.f('ck_embeddings_dim')),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_embeddings_image_id_images'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('image_id', 'model', name=op.f('pk_embeddings'))
    )


def downgrade() -> None:
    op.drop_table('embeddings')
