"""rbac policies

Revision ID: 0005
Revises: 0010
Create Date: 2026-12-06 23:20:00

Existing shared and external networks get the wildcard policies that stand for those flags now.
"""

import uuid

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        'rbac_policies',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('project_id', sa.String(length=255), nullable=False),
        sa.Column('object_type', sa.String(length=64), nullable=False),
        sa.Column('object_id', sa.String(length=36), nullable=False),
        sa.Column('action', sa.String(length=255), nullable=False),
        sa.Column('target_project', sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_rbac_policies')),
        sa.UniqueConstraint('object_type', 'object_id', 'action', 'target_project',
                            name=op.f('uq_rbac_policies_object_type_object_id_action_target_project')),
    )
    with op.batch_alter_table('rbac_policies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rbac_policies_project_id'), ['project_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_rbac_policies_target_project'), ['target_project'], unique=False)
    conn = op.get_bind()
    rows = []
    for net_id, project, shared, external in conn.execute(
            sa.text('SELECT id, project_id, shared, router_external FROM networks')):
        for flag, action in ((shared, 'access_as_shared'), (external, 'access_as_external')):
            if flag:
                rows.append({'id': str(uuid.uuid4()), 'project_id': project, 'object_type': 'network',
                             'object_id': net_id, 'action': action, 'target_project': '*'})
    if rows:
        op.bulk_insert(table, rows)


def downgrade() -> None:
    with op.batch_alter_table('rbac_policies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rbac_policies_target_project'))
        batch_op.drop_index(batch_op.f('ix_rbac_policies_project_id'))
    op.drop_table('rbac_policies')
