"""HA routers (l3-ha): routers.ha/ha_vr_id, a binding per hosting agent with its HA port and VRRP state, the
projects' HA networks and their VRIDs

Revision ID: 0015
Revises: 0009
Create Date: 2026-12-07 02:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0009'
branch_labels = None
depends_on = None


def _bindings_table(ha: bool) -> list[sa.schema.SchemaItem]:
    cols: list[sa.schema.SchemaItem] = [
        sa.Column('router_id', sa.String(length=36), nullable=False),
    ]
    if ha:
        cols.append(sa.Column('binding_index', sa.Integer(), server_default='1', nullable=False))
    cols.append(sa.Column('l3_agent_id', sa.String(length=36), nullable=False))
    if ha:
        cols += [sa.Column('ha_port_id', sa.String(length=36), nullable=True),
                 sa.Column('ha_state', sa.String(length=16), nullable=True),
                 sa.ForeignKeyConstraint(['ha_port_id'], ['ports.id'],
                                         name=op.f('fk_router_l3_agents_ha_port_id_ports'), ondelete='SET NULL')]
    cols += [
        sa.ForeignKeyConstraint(['l3_agent_id'], ['agents.id'], name=op.f('fk_router_l3_agents_l3_agent_id_agents'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['router_id'], ['routers.id'], name=op.f('fk_router_l3_agents_router_id_routers'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint(*(['router_id', 'binding_index'] if ha else ['router_id']),
                                name=op.f('pk_router_l3_agents')),
    ]
    if ha:
        cols.append(sa.UniqueConstraint('router_id', 'l3_agent_id', name=op.f('uq_router_l3_agents_router_id_l3_agent_id')))
    return cols


def _rebuild_bindings(ha: bool) -> None:
    """The key changes: copy the (few) rows out, drop the table, make it anew (portable across SQLite, PostgreSQL
    and MariaDB, where changing a primary key under foreign keys is not)."""
    bind = op.get_bind()
    rows = bind.execute(sa.text('SELECT router_id, l3_agent_id FROM router_l3_agents')).all()
    op.drop_table('router_l3_agents')  # its index with it
    table = op.create_table('router_l3_agents', *_bindings_table(ha))
    with op.batch_alter_table('router_l3_agents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_router_l3_agents_l3_agent_id'), ['l3_agent_id'], unique=False)
    seen = set()
    out = []
    for router_id, agent_id in rows:
        if router_id not in seen:  # downgrading: an HA router keeps its first agent
            seen.add(router_id)
            out.append({'router_id': router_id, 'l3_agent_id': agent_id})
    if out:
        op.bulk_insert(table, out)


def upgrade() -> None:
    with op.batch_alter_table('routers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ha', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('ha_vr_id', sa.Integer(), nullable=True))
    _rebuild_bindings(ha=True)
    op.create_table('ha_router_networks',
    sa.Column('project_id', sa.String(length=255), nullable=False),
    sa.Column('network_id', sa.String(length=36), nullable=False),
    sa.ForeignKeyConstraint(['network_id'], ['networks.id'], name=op.f('fk_ha_router_networks_network_id_networks'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id', name=op.f('pk_ha_router_networks')),
    sa.UniqueConstraint('network_id', name=op.f('uq_ha_router_networks_network_id'))
    )
    op.create_table('ha_router_vrid_allocations',
    sa.Column('network_id', sa.String(length=36), nullable=False),
    sa.Column('vr_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['network_id'], ['networks.id'],
                            name=op.f('fk_ha_router_vrid_allocations_network_id_networks'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('network_id', 'vr_id', name=op.f('pk_ha_router_vrid_allocations'))
    )


def downgrade() -> None:
    op.drop_table('ha_router_vrid_allocations')
    op.drop_table('ha_router_networks')
    _rebuild_bindings(ha=False)
    with op.batch_alter_table('routers', schema=None) as batch_op:
        batch_op.drop_column('ha_vr_id')
        batch_op.drop_column('ha')
