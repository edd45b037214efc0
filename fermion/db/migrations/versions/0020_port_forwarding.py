"""Floating IP port forwardings

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 05:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'port_forwardings',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('project_id', sa.String(length=255), nullable=False),
        sa.Column('floatingip_id', sa.String(length=36), nullable=False),
        sa.Column('internal_port_id', sa.String(length=36), nullable=False),
        sa.Column('internal_ip_address', sa.String(length=64), nullable=False),
        sa.Column('protocol', sa.String(length=40), nullable=False),
        sa.Column('external_port_start', sa.Integer(), nullable=False),
        sa.Column('external_port_end', sa.Integer(), nullable=False),
        sa.Column('internal_port_start', sa.Integer(), nullable=False),
        sa.Column('internal_port_end', sa.Integer(), nullable=False),
        sa.Column('description', sa.String(length=1024), nullable=False),
        sa.ForeignKeyConstraint(['floatingip_id'], ['floatingips.id'],
                                name=op.f('fk_port_forwardings_floatingip_id_floatingips'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['internal_port_id'], ['ports.id'],
                                name=op.f('fk_port_forwardings_internal_port_id_ports'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_port_forwardings')),
        sa.UniqueConstraint('floatingip_id', 'protocol', 'external_port_start', 'external_port_end',
                            name='uq_port_forwardings_external'),
        sa.UniqueConstraint('protocol', 'internal_port_id', 'internal_ip_address', 'internal_port_start',
                            'internal_port_end', name='uq_port_forwardings_internal'),
    )
    with op.batch_alter_table('port_forwardings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_port_forwardings_floatingip_id'), ['floatingip_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_port_forwardings_internal_port_id'), ['internal_port_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_port_forwardings_project_id'), ['project_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('port_forwardings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_port_forwardings_project_id'))
        batch_op.drop_index(batch_op.f('ix_port_forwardings_internal_port_id'))
        batch_op.drop_index(batch_op.f('ix_port_forwardings_floatingip_id'))
    op.drop_table('port_forwardings')
