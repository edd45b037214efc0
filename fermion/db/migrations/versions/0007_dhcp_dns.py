"""dns-integration, dns-domain-ports, subnet-dns-publish-fixed-ip and extra_dhcp_opt attributes

Revision ID: 0007
Revises: 0013
Create Date: 2026-12-06 23:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('networks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dns_domain', sa.String(length=255), nullable=False, server_default=''))
    with op.batch_alter_table('subnets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dns_publish_fixed_ip', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    with op.batch_alter_table('ports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dns_name', sa.String(length=255), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('dns_domain', sa.String(length=255), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('extra_dhcp_opts', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('ports', schema=None) as batch_op:
        batch_op.drop_column('extra_dhcp_opts')
        batch_op.drop_column('dns_domain')
        batch_op.drop_column('dns_name')
    with op.batch_alter_table('subnets', schema=None) as batch_op:
        batch_op.drop_column('dns_publish_fixed_ip')
    with op.batch_alter_table('networks', schema=None) as batch_op:
        batch_op.drop_column('dns_domain')
