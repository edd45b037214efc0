"""Which RPC transport a process uses: RabbitMQ when a transport URL is set, else in-process.

Kept apart from runtime.agents so the API server does not import the agents' data-plane code."""

from __future__ import annotations

from fermion.config import settings as cfg
from fermion.rpc.transport import Transport


def transport_for(settings: cfg.Settings) -> Transport:
    if settings.rpc.transport_url:
        from fermion.rpc.amqp import AmqpTransport

        return AmqpTransport(settings.rpc.transport_url, prefix=settings.rpc.prefix)
    from fermion.rpc.inproc import InProcTransport

    return InProcTransport()
