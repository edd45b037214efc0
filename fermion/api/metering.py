"""/v2.0/metering/...: metering labels and rules (the generic handlers under Neutron's URL prefix), and the
read-only counters of a label, /v2.0/metering/metering-labels/{id}/counters (docs/metering.md)."""

from __future__ import annotations

from fermion.api.controller import Controller
from fermion.api.wire import Request, Response
from fermion.context import Context
from fermion.errors import NeutronError, NotFound
from fermion.services import metering
from fermion.services.registry import Services

LABELS = ("metering-labels", "metering_labels")
RULES = ("metering-label-rules", "metering_label_rules")


class MeteringController:
    def __init__(self, services: Services, labels: Controller, rules: Controller) -> None:
        self.db = services.db
        self.labels = labels
        self.rules = rules

    def handle(self, req: Request, ctx: Context, rest: list[str]) -> Response:
        """rest: the path after /v2.0/metering/."""
        ctl = self.labels if rest[0] in LABELS else self.rules if rest[0] in RULES else None
        if ctl is None or len(rest) > 3:
            raise NotFound("The resource could not be found.")
        method = req.method
        if len(rest) == 1:
            if method == "GET":
                return ctl.list(req, ctx)
            if method == "POST":
                return ctl.create(req, ctx)
        elif len(rest) == 2:
            if method == "GET":
                return ctl.show(req, ctx, rest[1])
            if method == "PUT":
                return ctl.update(req, ctx, rest[1])
            if method == "DELETE":
                return ctl.delete(req, ctx, rest[1])
        elif ctl is self.labels and rest[2] == "counters":
            if method == "GET":
                return self.counters(ctx, rest[1])
        else:
            raise NotFound("The resource could not be found.")
        raise NeutronError(f"The method {method} is not allowed on {'/'.join(rest)}", type="HTTPMethodNotAllowed",
                           status=405)

    def counters(self, ctx: Context, label_id: str) -> Response:
        """Whoever may read the label reads its counters."""
        visible, pred = self.labels._visible(ctx)
        with self.db.read() as conn:
            label = self.labels.coll.get(conn, label_id, visible)
            if label is not None and visible is None and not pred.evaluate(label, ctx.credentials()):
                label = None
            if label is None:
                raise metering.label_not_found(label_id)
            body = metering.label_counters(conn, label_id)
        return Response(200, {"counters": body})
