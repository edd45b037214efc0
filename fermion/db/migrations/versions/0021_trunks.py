"""Trunks and their subports

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 11:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'trunks',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('project_id', sa.String(length=255), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('description', sa.String(length=255), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.Column('revision_number', sa.Integer(), nullable=False),
        sa.Column('admin_state_up', sa.Boolean(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('port_id', sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(['port_id'], ['ports.id'], name=op.f('fk_trunks_port_id_ports'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_trunks')),
        sa.UniqueConstraint('port_id', name=op.f('uq_trunks_port_id')),
    )
    with op.batch_alter_table('trunks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_trunks_project_id'), ['project_id'], unique=False)
    op.create_table(
        'subports',
        sa.Column('port_id', sa.String(length=36), nullable=False),
        sa.Column('trunk_id', sa.String(length=36), nullable=False),
        sa.Column('segmentation_type', sa.String(length=32), nullable=False),
        sa.Column('segmentation_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['port_id'], ['ports.id'], name=op.f('fk_subports_port_id_ports'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['trunk_id'], ['trunks.id'], name=op.f('fk_subports_trunk_id_trunks'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('port_id', name=op.f('pk_subports')),
        sa.UniqueConstraint('trunk_id', 'segmentation_type', 'segmentation_id',
                            name=op.f('uq_subports_trunk_id_segmentation_type_segmentation_id')),
    )
    with op.batch_alter_table('subports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subports_trunk_id'), ['trunk_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('subports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subports_trunk_id'))
    op.drop_table('subports')
    with op.batch_alter_table('trunks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_trunks_project_id'))
    op.drop_table('trunks')
