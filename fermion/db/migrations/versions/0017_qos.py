"""QoS: policies, their rules, the projects' default policies, and the policy of ports, networks, floating IPs
and router gateways

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 05:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

# (table, column) of the objects a policy applies to
_USERS = (('ports', 'qos_policy_id'), ('networks', 'qos_policy_id'), ('floatingips', 'qos_policy_id'),
          ('routers', 'gw_qos_policy_id'))


def _policy_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(['qos_policy_id'], ['qos_policies.id'],
                                   name=op.f(f'fk_{table}_qos_policy_id_qos_policies'), ondelete='CASCADE')


def upgrade() -> None:
    op.create_table('qos_policies',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('revision_number', sa.Integer(), nullable=False),
    sa.Column('shared', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_qos_policies'))
    )
    with op.batch_alter_table('qos_policies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_qos_policies_project_id'), ['project_id'], unique=False)
    op.create_table('qos_policies_default',
    sa.Column('project_id', sa.String(length=255), nullable=False),
    sa.Column('qos_policy_id', sa.String(length=36), nullable=False),
    _policy_fk('qos_policies_default'),
    sa.PrimaryKeyConstraint('project_id', name=op.f('pk_qos_policies_default'))
    )
    with op.batch_alter_table('qos_policies_default', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_qos_policies_default_qos_policy_id'), ['qos_policy_id'], unique=False)
    op.create_table('qos_bandwidth_limit_rules',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('qos_policy_id', sa.String(length=36), nullable=False),
    sa.Column('max_kbps', sa.BigInteger(), nullable=False),
    sa.Column('max_burst_kbps', sa.BigInteger(), nullable=False),
    sa.Column('direction', sa.String(length=16), nullable=False),
    _policy_fk('qos_bandwidth_limit_rules'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_qos_bandwidth_limit_rules')),
    sa.UniqueConstraint('qos_policy_id', 'direction', name=op.f('uq_qos_bandwidth_limit_rules_qos_policy_id_direction'))
    )
    op.create_table('qos_dscp_marking_rules',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('qos_policy_id', sa.String(length=36), nullable=False),
    sa.Column('dscp_mark', sa.Integer(), nullable=False),
    _policy_fk('qos_dscp_marking_rules'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_qos_dscp_marking_rules')),
    sa.UniqueConstraint('qos_policy_id', name=op.f('uq_qos_dscp_marking_rules_qos_policy_id'))
    )
    op.create_table('qos_minimum_bandwidth_rules',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('qos_policy_id', sa.String(length=36), nullable=False),
    sa.Column('min_kbps', sa.BigInteger(), nullable=False),
    sa.Column('direction', sa.String(length=16), nullable=False),
    _policy_fk('qos_minimum_bandwidth_rules'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_qos_minimum_bandwidth_rules')),
    sa.UniqueConstraint('qos_policy_id', 'direction',
                        name=op.f('uq_qos_minimum_bandwidth_rules_qos_policy_id_direction'))
    )
    for table, column in _USERS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column(column, sa.String(length=36), nullable=True))
            batch_op.create_index(batch_op.f(f'ix_{table}_{column}'), [column], unique=False)


def downgrade() -> None:
    for table, column in _USERS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f'ix_{table}_{column}'))
            batch_op.drop_column(column)
    for table in ('qos_minimum_bandwidth_rules', 'qos_dscp_marking_rules', 'qos_bandwidth_limit_rules',
                  'qos_policies_default'):
        op.drop_table(table)
    with op.batch_alter_table('qos_policies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_qos_policies_project_id'))
    op.drop_table('qos_policies')
