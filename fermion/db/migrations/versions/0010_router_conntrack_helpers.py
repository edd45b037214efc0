"""router conntrack helpers

Revision ID: 0010
Revises: 0004
Create Date: 2026-12-06 23:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'router_conntrack_helpers',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('project_id', sa.String(length=255), nullable=False),
        sa.Column('router_id', sa.String(length=36), nullable=False),
        sa.Column('protocol', sa.String(length=40), nullable=False),
        sa.Column('port', sa.Integer(), nullable=False),
        sa.Column('helper', sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(['router_id'], ['routers.id'],
                                name=op.f('fk_router_conntrack_helpers_router_id_routers'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_router_conntrack_helpers')),
        sa.UniqueConstraint('router_id', 'protocol', 'port', 'helper',
                            name=op.f('uq_router_conntrack_helpers_router_id_protocol_port_helper')),
    )
    with op.batch_alter_table('router_conntrack_helpers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_router_conntrack_helpers_project_id'), ['project_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_router_conntrack_helpers_router_id'), ['router_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('router_conntrack_helpers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_router_conntrack_helpers_router_id'))
        batch_op.drop_index(batch_op.f('ix_router_conntrack_helpers_project_id'))
    op.drop_table('router_conntrack_helpers')
