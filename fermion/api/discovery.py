"""Version, resource and extension documents."""

from __future__ import annotations

from fermion.api.wire import Request, Response
from fermion.errors import NotFound
from fermion.resources.catalog import EXTENSIONS, EXTENSIONS_BY_ALIAS, RESOURCES, Extension


def versions(req: Request) -> Response:
    return Response(200, {"versions": [{"id": "v2.0", "status": "CURRENT",
                                        "links": [{"href": f"{req.base_url}/v2.0/", "rel": "self"}]}]})


def resources(req: Request) -> Response:
    return Response(200, {"resources": [
        {"name": r.member, "collection": r.collection,
         "links": [{"href": f"{req.base_url}/v2.0/{r.path}", "rel": "self"}]}
        for r in RESOURCES.values()]})


def _ext(e: Extension) -> dict[str, object]:
    return {"name": e.name, "alias": e.alias, "description": e.description, "updated": e.updated, "links": []}


def extensions(req: Request) -> Response:
    return Response(200, {"extensions": [_ext(e) for e in EXTENSIONS]})


def extension(req: Request, alias: str) -> Response:
    ext = EXTENSIONS_BY_ALIAS.get(alias)
    if ext is None:
        raise NotFound(f"Extension with alias {alias} does not exist")
    return Response(200, {"extension": _ext(ext)})
