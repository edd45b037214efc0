"""address scopes, subnet pools, subnet service types

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 23:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def _standard() -> list[sa.Column]:
    return [
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('project_id', sa.String(length=255), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('description', sa.String(length=255), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.Column('revision_number', sa.Integer(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table('address_scopes', *_standard(),
                    sa.Column('shared', sa.Boolean(), nullable=False),
                    sa.Column('ip_version', sa.Integer(), nullable=False),
                    sa.PrimaryKeyConstraint('id', name=op.f('pk_address_scopes')))
    with op.batch_alter_table('address_scopes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_address_scopes_project_id'), ['project_id'], unique=False)

    op.create_table('subnetpools', *_standard(),
                    sa.Column('ip_version', sa.Integer(), nullable=False),
                    sa.Column('prefixes', sa.JSON(), nullable=False),
                    sa.Column('default_prefixlen', sa.Integer(), nullable=False),
                    sa.Column('min_prefixlen', sa.Integer(), nullable=False),
                    sa.Column('max_prefixlen', sa.Integer(), nullable=False),
                    sa.Column('default_quota', sa.Integer(), nullable=True),
                    sa.Column('is_default', sa.Boolean(), nullable=False),
                    sa.Column('shared', sa.Boolean(), nullable=False),
                    sa.Column('address_scope_id', sa.String(length=36), nullable=True),
                    sa.ForeignKeyConstraint(['address_scope_id'], ['address_scopes.id'],
                                            name=op.f('fk_subnetpools_address_scope_id_address_scopes')),
                    sa.PrimaryKeyConstraint('id', name=op.f('pk_subnetpools')))
    with op.batch_alter_table('subnetpools', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subnetpools_project_id'), ['project_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_subnetpools_address_scope_id'), ['address_scope_id'], unique=False)

    op.create_table('default_subnetpools',
                    sa.Column('ip_version', sa.Integer(), autoincrement=False, nullable=False),
                    sa.Column('subnetpool_id', sa.String(length=36), nullable=False),
                    sa.ForeignKeyConstraint(['subnetpool_id'], ['subnetpools.id'],
                                            name=op.f('fk_default_subnetpools_subnetpool_id_subnetpools'),
                                            ondelete='CASCADE'),
                    sa.PrimaryKeyConstraint('ip_version', name=op.f('pk_default_subnetpools')),
                    sa.UniqueConstraint('subnetpool_id', name=op.f('uq_default_subnetpools_subnetpool_id')))

    with op.batch_alter_table('subnets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subnets_subnetpool_id'), ['subnetpool_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_subnets_subnetpool_id_subnetpools'), 'subnetpools',
                                    ['subnetpool_id'], ['id'])

    op.create_table('subnet_service_types',
                    sa.Column('subnet_id', sa.String(length=36), nullable=False),
                    sa.Column('service_type', sa.String(length=255), nullable=False),
                    sa.ForeignKeyConstraint(['subnet_id'], ['subnets.id'],
                                            name=op.f('fk_subnet_service_types_subnet_id_subnets'),
                                            ondelete='CASCADE'),
                    sa.PrimaryKeyConstraint('subnet_id', 'service_type', name=op.f('pk_subnet_service_types')))


def downgrade() -> None:
    op.drop_table('subnet_service_types')
    with op.batch_alter_table('subnets', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_subnets_subnetpool_id_subnetpools'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_subnets_subnetpool_id'))
    op.drop_table('default_subnetpools')
    op.drop_table('subnetpools')
    op.drop_table('address_scopes')
