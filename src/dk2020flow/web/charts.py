"""Small charts drawn on the server as inline SVG (no JavaScript, no inline styles).

The Content-Security-Policy allows no ``style`` attribute, so the look is given with
SVG presentation attributes (``fill``, ``font-size``). Every text goes through
``markupsafe.escape``; the chart is an ``<svg role="img">`` named by its ``<title>``
and described by its ``<desc>``, and each bar carries its label and value as text, so
nothing is told by colour alone. A table beside the chart holds the same figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

BAR = "#004993"
"""DKFDS's primary blue: 8.6:1 against white."""
INK = "#1a1a1a"
TRACK = "#e6e6e6"

WIDTH = 720
LABEL_WIDTH = 230
VALUE_WIDTH = 70
ROW = 30
BAR_HEIGHT = 18
PAD = 8
MAX_LABEL = 32


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: int
    value_text: str
    """The value as the page's language writes it (``1.234`` / ``1,234``)."""


def _short(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def bar_chart(bars: Sequence[Bar], *, chart_id: str, title: str, desc: str) -> Markup:
    """A horizontal bar chart, one labelled bar per item, as an ``<svg>`` element."""
    height = PAD * 2 + ROW * max(len(bars), 1)
    top = max((b.value for b in bars), default=0) or 1
    room = WIDTH - LABEL_WIDTH - VALUE_WIDTH - PAD
    ident = escape(chart_id)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="app-chart" role="img" '
        f'viewBox="0 0 {WIDTH} {height}" width="100%" preserveAspectRatio="xMinYMin meet" '
        f'aria-labelledby="{ident}-title {ident}-desc" font-family="IBM Plex Sans, sans-serif">',
        f'<title id="{ident}-title">{escape(title)}</title>',
        f'<desc id="{ident}-desc">{escape(desc)}</desc>',
    ]
    for i, bar in enumerate(bars):
        y = PAD + i * ROW
        middle = y + ROW / 2
        length = round(room * bar.value / top) if bar.value else 0
        parts.append(
            f'<g><text x="{LABEL_WIDTH - PAD}" y="{middle:g}" dy="0.35em" text-anchor="end" '
            f'font-size="14" fill="{INK}">{escape(_short(bar.label))}</text>'
            f'<rect x="{LABEL_WIDTH}" y="{middle - BAR_HEIGHT / 2:g}" width="{room}" '
            f'height="{BAR_HEIGHT}" fill="{TRACK}"/>'
            f'<rect x="{LABEL_WIDTH}" y="{middle - BAR_HEIGHT / 2:g}" width="{length}" '
            f'height="{BAR_HEIGHT}" fill="{BAR}"/>'
            f'<text x="{LABEL_WIDTH + room + PAD}" y="{middle:g}" dy="0.35em" font-size="14" '
            f'font-weight="600" fill="{INK}">{escape(bar.value_text)}</text></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text above went through escape()
