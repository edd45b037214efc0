"""port extensions (uplink status, data plane status, device profile, NUMA policy, trusted, hints, hardware
offload type, ip_allocation) and inactive port bindings

Revision ID: 0009
Revises: 0006
Create Date: 2026-12-06 23:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('propagate_uplink_status', sa.Boolean(), nullable=False,
                                      server_default=sa.true()))
        batch_op.add_column(sa.Column('data_plane_status', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('device_profile', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('numa_affinity_policy', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('trusted', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('hints', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('hardware_offload_type', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('ip_allocation', sa.String(length=16), nullable=False,
                                      server_default='immediate'))
    op.create_table('port_bindings',
    sa.Column('port_id', sa.String(length=36), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('vnic_type', sa.String(length=32), nullable=False),
    sa.Column('profile', sa.JSON(), nullable=False),
    sa.Column('vif_type', sa.String(length=64), nullable=False),
    sa.Column('vif_details', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['port_id'], ['ports.id'], name=op.f('fk_port_bindings_port_id_ports'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('port_id', 'host', name=op.f('pk_port_bindings'))
    )


def downgrade() -> None:
    op.drop_table('port_bindings')
    with op.batch_alter_table('ports', schema=None) as batch_op:
        for column in ('ip_allocation', 'hardware_offload_type', 'hints', 'trusted', 'numa_affinity_policy',
                       'device_profile', 'data_plane_status', 'propagate_uplink_status'):
            batch_op.drop_column(column)
