"""address groups, rules' remote address group, default security group rule templates

Revision ID: 0008
Revises: 0007
"""

import hashlib
import json
import uuid

import netaddr
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

# Neutron's built-in templates: egress to anywhere for every group, ingress from the group itself for the
# default group, each for IPv4 and IPv6. The digest is services/default_security_group_rules.fingerprint's.
_LEGACY = [
    ("egress", ethertype, None, True, True, "Legacy default SG rule for egress traffic")
    for ethertype in ("IPv4", "IPv6")
] + [
    ("ingress", ethertype, "PARENT", True, False, "Legacy default SG rule for ingress traffic")
    for ethertype in ("IPv4", "IPv6")
]


def _fingerprint(direction: str, ethertype: str, remote_group: str | None) -> str:
    key = [direction, ethertype, None, None, None, remote_group, None, None]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()


def upgrade() -> None:
    op.create_table('address_groups',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.String(length=1024), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('revision_number', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_address_groups'))
    )
    with op.batch_alter_table('address_groups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_address_groups_project_id'), ['project_id'], unique=False)
    op.create_table('address_group_addresses',
    sa.Column('address_group_id', sa.String(length=36), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['address_group_id'], ['address_groups.id'], name=op.f('fk_address_group_addresses_address_group_id_address_groups'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('address_group_id', 'address', name=op.f('pk_address_group_addresses'))
    )
    templates = op.create_table('default_security_group_rules',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('direction', sa.String(length=16), nullable=False),
    sa.Column('ethertype', sa.String(length=8), nullable=False),
    sa.Column('protocol', sa.String(length=40), nullable=True),
    sa.Column('port_range_min', sa.Integer(), nullable=True),
    sa.Column('port_range_max', sa.Integer(), nullable=True),
    sa.Column('remote_ip_prefix', sa.String(length=64), nullable=True),
    sa.Column('remote_group_id', sa.String(length=36), nullable=True),
    sa.Column('remote_address_group_id', sa.String(length=36), nullable=True),
    sa.Column('description', sa.String(length=1024), nullable=False),
    sa.Column('used_in_default_sg', sa.Boolean(), nullable=False),
    sa.Column('used_in_non_default_sg', sa.Boolean(), nullable=False),
    sa.Column('fingerprint_default', sa.String(length=64), nullable=True),
    sa.Column('fingerprint_non_default', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_default_security_group_rules')),
    sa.UniqueConstraint('fingerprint_default', name=op.f('uq_default_security_group_rules_fingerprint_default')),
    sa.UniqueConstraint('fingerprint_non_default', name=op.f('uq_default_security_group_rules_fingerprint_non_default'))
    )
    with op.batch_alter_table('securitygrouprules', schema=None) as batch_op:
        batch_op.add_column(sa.Column('remote_address_group_id', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('normalized_cidr', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_securitygrouprules_remote_address_group_id'), ['remote_address_group_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_securitygrouprules_remote_address_group_id_address_groups'), 'address_groups', ['remote_address_group_id'], ['id'])
    op.bulk_insert(templates, [
        {"id": str(uuid.uuid4()), "direction": d, "ethertype": e, "protocol": None, "port_range_min": None,
         "port_range_max": None, "remote_ip_prefix": None, "remote_group_id": g, "remote_address_group_id": None,
         "description": text, "used_in_default_sg": in_default, "used_in_non_default_sg": in_others,
         "fingerprint_default": _fingerprint(d, e, g) if in_default else None,
         "fingerprint_non_default": _fingerprint(d, e, g) if in_others else None}
        for d, e, g, in_default, in_others, text in _LEGACY])
    rules = sa.table('securitygrouprules', sa.column('id', sa.String), sa.column('remote_ip_prefix', sa.String),
                     sa.column('normalized_cidr', sa.String))
    conn = op.get_bind()
    for rid, prefix in conn.execute(sa.select(rules.c.id, rules.c.remote_ip_prefix)
                                    .where(rules.c.remote_ip_prefix.is_not(None))).all():
        net = netaddr.IPNetwork(prefix)
        conn.execute(rules.update().where(rules.c.id == rid).values(normalized_cidr=str(net.cidr)))


def downgrade() -> None:
    with op.batch_alter_table('securitygrouprules', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_securitygrouprules_remote_address_group_id_address_groups'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_securitygrouprules_remote_address_group_id'))
        batch_op.drop_column('normalized_cidr')
        batch_op.drop_column('remote_address_group_id')
    op.drop_table('default_security_group_rules')
    op.drop_table('address_group_addresses')
    with op.batch_alter_table('address_groups', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_address_groups_project_id'))
    op.drop_table('address_groups')
