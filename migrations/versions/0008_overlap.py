"""overlap: images labelled independently by several people (votes in per-annotator layers
of annotations), who finished which, and the seconds spent per image in the labelling app

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 23:45:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_REVIEW = "review IN ('pending', 'accepted', 'rejected')"
NEW_REVIEW = "review IN ('pending', 'accepted', 'rejected', 'vote')"
LAYER = ("(review = 'vote' AND layer IS NOT NULL) OR (review <> 'vote' AND layer IS NULL)")


def _annotations_batch():  # type: ignore[no-untyped-def]
    sqlite = op.get_bind().dialect.name == "sqlite"
    kwargs = {"recreate": "always", "table_kwargs": {"sqlite_autoincrement": True}} if sqlite else {}
    return op.batch_alter_table('annotations', schema=None, **kwargs)


def upgrade() -> None:
    with _annotations_batch() as batch_op:
        batch_op.add_column(sa.Column('layer', sa.String(length=100), nullable=True))
        batch_op.drop_constraint(op.f('ck_annotations_review'), type_='check')
        batch_op.create_check_constraint(op.f('ck_annotations_review'), NEW_REVIEW)
        batch_op.create_check_constraint(op.f('ck_annotations_layer'), LAYER)
    op.create_table('overlap_images',
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('dataset_id', sa.Integer(), nullable=False),
    sa.Column('annotators', sa.Integer(), nullable=False),
    sa.Column('seed', sa.Integer(), nullable=True),
    sa.Column('marked_by', sa.String(length=100), nullable=False),
    sa.Column('marked_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('annotators >= 2', name=op.f('ck_overlap_images_annotators')),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], name=op.f('fk_overlap_images_dataset_id_datasets'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_overlap_images_image_id_images'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('image_id', name=op.f('pk_overlap_images'))
    )
    with op.batch_alter_table('overlap_images', schema=None) as batch_op:
        batch_op.create_index('ix_overlap_images_dataset', ['dataset_id', 'image_id'], unique=False)
    op.create_table('overlap_done',
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('annotator', sa.String(length=100), nullable=False),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['overlap_images.image_id'], name=op.f('fk_overlap_done_image_id_overlap_images'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('image_id', 'annotator', name=op.f('pk_overlap_done'))
    )
    op.create_table('image_times',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dataset_id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('author', sa.String(length=100), nullable=False),
    sa.Column('seconds', sa.Float(), nullable=False),
    sa.Column('shown_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('seconds >= 0', name=op.f('ck_image_times_seconds')),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], name=op.f('fk_image_times_dataset_id_datasets'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_image_times_image_id_images'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_image_times'))
    )
    with op.batch_alter_table('image_times', schema=None) as batch_op:
        batch_op.create_index('ix_image_times_dataset_author', ['dataset_id', 'author'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('image_times', schema=None) as batch_op:
        batch_op.drop_index('ix_image_times_dataset_author')
    op.drop_table('image_times')
    op.drop_table('overlap_done')
    with op.batch_alter_table('overlap_images', schema=None) as batch_op:
        batch_op.drop_index('ix_overlap_images_dataset')
    op.drop_table('overlap_images')
    op.execute("DELETE FROM annotations WHERE review = 'vote'")  # votes have no place before
    with _annotations_batch() as batch_op:
        batch_op.drop_constraint(op.f('ck_annotations_layer'), type_='check')
        batch_op.drop_constraint(op.f('ck_annotations_review'), type_='check')
        batch_op.create_check_constraint(op.f('ck_annotations_review'), OLD_REVIEW)
        batch_op.drop_column('layer')
