"""Distributed routers (placeholder; filled by the DVR change)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 05:00:00
"""

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
