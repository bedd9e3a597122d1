"""The what-if page: its markup and script (``static/``) with the shared assets inlined."""

from __future__ import annotations

from importlib import resources

from thinkq.web import page

__all__ = ["explore_page"]


def _static(name: str) -> str:
    return resources.files("thinkq.explore").joinpath("static", name).read_text("utf-8")


def explore_page(*, title: str = "thinkq explore") -> str:
    """The whole page as one HTML document (plot.js, thinkq.css and its script inlined)."""
    return page(title=title, body=_static("explore.html"), script=_static("explore.js"))
