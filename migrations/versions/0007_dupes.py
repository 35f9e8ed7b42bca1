"""perceptual hashes, suspect-label flags, near-duplicate groups

`images.phash` holds an image's 64-bit pHash (as a signed BIGINT; `add` computes it, `dupes`
backfills images added before). `suspect_flags` keeps the labels cross-validation doubts and how
each flag was cleared; `duplicates` keeps groups of near-duplicate images and which are kept.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 23:40:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.add_column(sa.Column('phash', sa.BigInteger(), nullable=True))
    op.create_table(
        'suspect_flags',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('dataset_id', sa.Integer(), nullable=False),
        sa.Column('image_id', sa.Integer(), nullable=False),
        sa.Column('annotation_id', sa.Integer(), nullable=True),
        sa.Column('class_id', sa.Integer(), nullable=True),
        sa.Column('suggested_class_id', sa.Integer(), nullable=True),
        sa.Column('score', sa.Float(), nullable=False),
        sa.Column('run', sa.Integer(), nullable=False),
        sa.Column('image_revision', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('cleared_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('cleared_by', sa.String(length=100), nullable=True),
        sa.Column('resolution', sa.String(length=10), nullable=True),
        sa.CheckConstraint('score >= 0 AND score <= 1', name=op.f('ck_suspect_flags_score')),
        sa.CheckConstraint(
            "resolution IS NULL OR resolution IN ('edited', 'confirmed', 'superseded')",
            name=op.f('ck_suspect_flags_resolution'),
        ),
        sa.ForeignKeyConstraint(['class_id'], ['classes.id'], name=op.f('fk_suspect_flags_class_id_classes'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], name=op.f('fk_suspect_flags_dataset_id_datasets'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_suspect_flags_image_id_images'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['suggested_class_id'], ['classes.id'], name=op.f('fk_suspect_flags_suggested_class_id_classes'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_suspect_flags')),
    )
    op.create_index('ix_suspect_flags_dataset_open', 'suspect_flags', ['dataset_id', 'cleared_at', 'score'], unique=False)
    op.create_index('ix_suspect_flags_image', 'suspect_flags', ['image_id'], unique=False)
    op.create_table(
        'duplicates',
        sa.Column('image_id', sa.Integer(), nullable=False),
        sa.Column('dataset_id', sa.Integer(), nullable=False),
        sa.Column('group_id', sa.Integer(), nullable=False),
        sa.Column('distance', sa.Integer(), nullable=False),
        sa.Column('kept', sa.Boolean(), nullable=False),
        sa.Column('found_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint('distance >= 0', name=op.f('ck_duplicates_distance')),
        sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], name=op.f('fk_duplicates_dataset_id_datasets'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_duplicates_image_id_images'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('image_id', name=op.f('pk_duplicates')),
    )
    op.create_index('ix_duplicates_dataset_group', 'duplicates', ['dataset_id', 'group_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_duplicates_dataset_group', table_name='duplicates')
    op.drop_table('duplicates')
    op.drop_index('ix_suspect_flags_image', table_name='suspect_flags')
    op.drop_index('ix_suspect_flags_dataset_open', table_name='suspect_flags')
    op.drop_table('suspect_flags')
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_column('phash')
