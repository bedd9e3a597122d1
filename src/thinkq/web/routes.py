"""Serving the shared assets over HTTP (Starlette), for pages that link rather than inline."""

from __future__ import annotations

import hashlib

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from thinkq.web.assets import ASSETS, asset, media_type

__all__ = ["asset_response", "asset_route"]


def asset_response(name: str, *, if_none_match: str | None = None) -> Response:
    """Asset ``name`` with its media type and an ``ETag`` (304 when it matches).

    An unknown name is a 404 with a one-line message; the files change only with the
    installed package, so clients may revalidate cheaply.
    """
    if name not in ASSETS:
        return PlainTextResponse(f"no asset {name!r}\n", status_code=404)
    text = asset(name)
    tag = '"' + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16] + '"'
    headers = {"ETag": tag, "Cache-Control": "no-cache"}
    if if_none_match == tag:
        return Response(status_code=304, headers=headers)
    return Response(text, media_type=media_type(name), headers=headers)


def asset_route(path: str = "/static/{name}") -> Route:
    """A ``GET`` route serving every asset at ``path`` (which must hold ``{name}``)."""
    if "{name}" not in path:
        raise ValueError(f"path: {path!r} has no '{{name}}' part")

    async def endpoint(request: Request) -> Response:
        name = request.path_params["name"]
        return asset_response(name, if_none_match=request.headers.get("if-none-match"))

    return Route(path, endpoint, methods=["GET"], name="thinkq-asset")
