"""Metering labels, rules and counters

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 05:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'meteringlabels',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('project_id', sa.String(length=255), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('description', sa.String(length=1024), nullable=False),
        sa.Column('shared', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_meteringlabels')),
    )
    with op.batch_alter_table('meteringlabels', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_meteringlabels_project_id'), ['project_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_meteringlabels_shared'), ['shared'], unique=False)
    op.create_table(
        'meteringlabelrules',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('metering_label_id', sa.String(length=36), nullable=False),
        sa.Column('project_id', sa.String(length=255), nullable=False),
        sa.Column('direction', sa.String(length=16), nullable=False),
        sa.Column('remote_ip_prefix', sa.String(length=64), nullable=True),
        sa.Column('source_ip_prefix', sa.String(length=64), nullable=True),
        sa.Column('destination_ip_prefix', sa.String(length=64), nullable=True),
        sa.Column('excluded', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['metering_label_id'], ['meteringlabels.id'],
                                name=op.f('fk_meteringlabelrules_metering_label_id_meteringlabels'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_meteringlabelrules')),
    )
    with op.batch_alter_table('meteringlabelrules', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_meteringlabelrules_metering_label_id'), ['metering_label_id'],
                              unique=False)
    op.create_table(
        'meteringcounters',
        sa.Column('label_id', sa.String(length=36), nullable=False),
        sa.Column('router_id', sa.String(length=36), nullable=False),
        sa.Column('host', sa.String(length=255), nullable=False),
        sa.Column('epoch', sa.String(length=64), nullable=False),
        sa.Column('packets', sa.BigInteger(), nullable=False),
        sa.Column('bytes', sa.BigInteger(), nullable=False),
        sa.Column('base_packets', sa.BigInteger(), nullable=False),
        sa.Column('base_bytes', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['label_id'], ['meteringlabels.id'],
                                name=op.f('fk_meteringcounters_label_id_meteringlabels'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('label_id', 'router_id', 'host', name=op.f('pk_meteringcounters')),
    )


def downgrade() -> None:
    op.drop_table('meteringcounters')
    with op.batch_alter_table('meteringlabelrules', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_meteringlabelrules_metering_label_id'))
    op.drop_table('meteringlabelrules')
    with op.batch_alter_table('meteringlabels', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_meteringlabels_shared'))
        batch_op.drop_index(batch_op.f('ix_meteringlabels_project_id'))
    op.drop_table('meteringlabels')
