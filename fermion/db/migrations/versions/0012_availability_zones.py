"""availability zone hints on networks and routers

Revision ID: 0012
Revises: 0004
Create Date: 2026-12-06 23:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ('networks', 'routers'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('availability_zone_hints', sa.JSON(), nullable=True))


def downgrade() -> None:
    for table in ('routers', 'networks'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('availability_zone_hints')
