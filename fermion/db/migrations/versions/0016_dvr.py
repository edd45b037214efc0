"""Distributed routers (dvr): routers.distributed, and the DVR MAC of each host that runs router copies

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 06:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('routers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('distributed', sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_table('dvr_host_macs',
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('mac_address', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('host', name=op.f('pk_dvr_host_macs')),
    sa.UniqueConstraint('mac_address', name=op.f('uq_dvr_host_macs_mac_address'))
    )


def downgrade() -> None:
    op.drop_table('dvr_host_macs')
    with op.batch_alter_table('routers', schema=None) as batch_op:
        batch_op.drop_column('distributed')
