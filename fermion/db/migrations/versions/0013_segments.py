"""segments as resources, subnets on segments, network segment ranges

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 23:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('network_segments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('project_id', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('name', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('description', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('created_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('updated_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('revision_number', sa.Integer(), nullable=True))
    # segments made before: their network's owner and times
    for column in ('project_id', 'created_at', 'updated_at'):
        op.execute(f"UPDATE network_segments SET {column} = (SELECT networks.{column} FROM networks "
                   f"WHERE networks.id = network_segments.network_id)")
    op.execute("UPDATE network_segments SET revision_number = 0")
    with op.batch_alter_table('subnets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('segment_id', sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f('ix_subnets_segment_id'), ['segment_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_subnets_segment_id_network_segments'), 'network_segments',
                                    ['segment_id'], ['id'])
    op.create_table('network_segment_ranges',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=255), nullable=True),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('revision_number', sa.Integer(), nullable=False),
    sa.Column('default', sa.Boolean(), nullable=False),
    sa.Column('shared', sa.Boolean(), nullable=False),
    sa.Column('network_type', sa.String(length=32), nullable=False),
    sa.Column('physical_network', sa.String(length=64), nullable=True),
    sa.Column('minimum', sa.BigInteger(), nullable=False),
    sa.Column('maximum', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_network_segment_ranges'))
    )
    with op.batch_alter_table('network_segment_ranges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_network_segment_ranges_project_id'), ['project_id'], unique=False)


def downgrade() -> None:
    op.drop_table('network_segment_ranges')
    with op.batch_alter_table('subnets', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_subnets_segment_id_network_segments'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_subnets_segment_id'))
        batch_op.drop_column('segment_id')
    with op.batch_alter_table('network_segments', schema=None) as batch_op:
        for column in ('revision_number', 'updated_at', 'created_at', 'description', 'name', 'project_id'):
            batch_op.drop_column(column)
