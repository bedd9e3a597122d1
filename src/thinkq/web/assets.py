"""The files the pages share, read from the installed package (:mod:`importlib.resources`).

``static/plot.js`` is the chart library (its API is the comment block at its top) and
``static/thinkq.css`` the style sheet. A page either inlines them (one self-contained
response: nothing else to fetch, nothing to authorise) or links them from a route
(:func:`thinkq.web.routes.asset_route`).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from functools import cache
from importlib import resources

__all__ = ["ASSETS", "asset", "media_type", "page"]

#: Every shipped file by name -> its media type.
ASSETS = {
    "plot.js": "text/javascript; charset=utf-8",
    "thinkq.css": "text/css; charset=utf-8",
}


def media_type(name: str) -> str:
    """The ``Content-Type`` of asset ``name``; ``ValueError`` naming it when unknown."""
    try:
        return ASSETS[name]
    except KeyError:
        known = ", ".join(sorted(ASSETS))
        raise ValueError(f"name: no asset {name!r} (known: {known})") from None


@cache
def asset(name: str) -> str:
    """The text of asset ``name`` (read once from the package, then cached)."""
    media_type(name)
    return resources.files("thinkq.web").joinpath("static", name).read_text("utf-8")


def _inline(name: str) -> str:
    text = asset(name)
    if name.endswith(".css"):
        return f"<style>\n{text}</style>"
    # a script's text ends at the first "</script" whatever quotes surround it
    if "</script" in text.lower():
        raise ValueError(f"name: {name} cannot be inlined (it contains '</script')")
    return f"<script>\n{text}</script>"


def _linked(name: str, prefix: str) -> str:
    href = html.escape(prefix + name, quote=True)
    if name.endswith(".css"):
        return f'<link rel="stylesheet" href="{href}">'
    return f'<script src="{href}"></script>'


def page(
    *,
    title: str,
    body: str,
    script: str = "",
    assets: Sequence[str] = ("thinkq.css", "plot.js"),
    inline: bool = True,
    prefix: str = "static/",
) -> str:
    """One HTML document: ``assets`` (inlined, or linked under ``prefix``), then ``body``.

    Parameters
    ----------
    title
        The document's title (escaped here).
    body
        The markup inside ``<body>``, trusted as is.
    script
        The page's own JavaScript, run after the body is parsed (trusted as is).
    assets
        Asset names (:data:`ASSETS`) in the order they load.
    inline
        ``True``: their text goes into the page; ``False``: ``<link>``/``<script src>``
        elements pointing at ``prefix + name``.
    """
    head = [_inline(name) if inline else _linked(name, prefix) for name in assets]
    tail = f"<script>\n{script}\n</script>" if script else ""
    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{html.escape(title)}</title>",
            *head,
            "</head>",
            "<body>",
            body,
            tail,
            "</body>",
            "</html>",
        ]
    )
