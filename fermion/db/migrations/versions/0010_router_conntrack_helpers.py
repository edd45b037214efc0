"""router conntrack helpers, service flavors and profiles, router flavor_id

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-06 23:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('networks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('is_default', sa.Boolean(), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_networks_is_default'), ['is_default'])
    op.create_table(
        'flavors',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=True),
        sa.Column('description', sa.String(length=1024), nullable=True),
        sa.Column('service_type', sa.String(length=36), nullable=True),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_flavors')),
    )
    op.create_table(
        'serviceprofiles',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('description', sa.String(length=1024), nullable=True),
        sa.Column('driver', sa.String(length=1024), nullable=False),
        sa.Column('metainfo', sa.String(length=4096), nullable=True),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_serviceprofiles')),
    )
    op.create_table(
        'flavorserviceprofilebindings',
        sa.Column('service_profile_id', sa.String(length=36), nullable=False),
        sa.Column('flavor_id', sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(['flavor_id'], ['flavors.id'],
                                name=op.f('fk_flavorserviceprofilebindings_flavor_id_flavors'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['service_profile_id'], ['serviceprofiles.id'],
                                name=op.f('fk_flavorserviceprofilebindings_service_profile_id_serviceprofiles'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('service_profile_id', 'flavor_id', name=op.f('pk_flavorserviceprofilebindings')),
    )
    with op.batch_alter_table('flavorserviceprofilebindings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_flavorserviceprofilebindings_flavor_id'), ['flavor_id'], unique=False)
    with op.batch_alter_table('routers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('flavor_id', sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f('ix_routers_flavor_id'), ['flavor_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_routers_flavor_id_flavors'), 'flavors', ['flavor_id'], ['id'])
    op.create_table(
        'auto_allocated_topologies',
        sa.Column('project_id', sa.String(length=255), nullable=False),
        sa.Column('network_id', sa.String(length=36), nullable=False),
        sa.Column('router_id', sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(['network_id'], ['networks.id'],
                                name=op.f('fk_auto_allocated_topologies_network_id_networks'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['router_id'], ['routers.id'],
                                name=op.f('fk_auto_allocated_topologies_router_id_routers'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('project_id', name=op.f('pk_auto_allocated_topologies')),
    )
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
    op.drop_table('auto_allocated_topologies')
    with op.batch_alter_table('networks', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_networks_is_default'), type_='unique')
        batch_op.drop_column('is_default')
    with op.batch_alter_table('routers', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_routers_flavor_id_flavors'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_routers_flavor_id'))
        batch_op.drop_column('flavor_id')
    with op.batch_alter_table('flavorserviceprofilebindings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_flavorserviceprofilebindings_flavor_id'))
    op.drop_table('flavorserviceprofilebindings')
    op.drop_table('serviceprofiles')
    op.drop_table('flavors')
