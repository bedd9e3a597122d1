"""What the thinkq pages share: a chart script, a style sheet, and how to serve them.

The gateway's live page (``/thinkq/``) and the what-if page (``thinkq explore``) are
plain HTML with JavaScript from this package only: no build step, no CDN, nothing
fetched from outside the server that serves the page.

``static/plot.js``
    A small SVG chart library (line charts with several series, dots, dashed lines,
    operating-point markers, reference lines, linear or log axes, a legend; horizontal
    bar charts). Its API is the comment block at the top of the file.
``static/thinkq.css``
    The light theme both pages use (cards, figure tiles, sliders, tables, messages).

:func:`page` builds a document with the assets inlined (or linked); :func:`asset`
reads one; :func:`asset_route` serves them when a page links them.
"""

from thinkq.web.assets import ASSETS, asset, media_type, page
from thinkq.web.routes import asset_response, asset_route

__all__ = ["ASSETS", "asset", "asset_response", "asset_route", "media_type", "page"]
