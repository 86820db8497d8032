"""Charts for the reports, drawn by matplotlib on the server as SVG: a document that
needs no JavaScript and no network to read. Only figures and the names of clauses,
surfaces, banks and regimes are drawn: never content or anything about a person."""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from typing import Any

_LOCK = threading.Lock()  # matplotlib's text layout caches are not thread-safe
_COLOURS = ("#1d4f91", "#b3261e", "#8a5a00", "#2e7d32", "#6a1b9a")


def _svg(figure: Any) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    return buffer.getvalue()


def _figure(width: float, height: float) -> Any:
    import matplotlib

    matplotlib.rcParams["svg.hashsalt"] = "consentry"  # the same figures, the same file
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=96)


def bar_chart(title: str, labels: Sequence[str], values: Sequence[float], *,
              unit: str = "") -> str:
    """A horizontal bar chart, largest first, as an SVG document."""
    pairs = sorted(zip(labels, values, strict=True), key=lambda p: p[1], reverse=True)[:20]
    with _LOCK:
        figure = _figure(7.5, 0.6 + 0.32 * max(1, len(pairs)))
        axes = figure.add_subplot()
        axes.set_title(title, loc="left", fontsize=11)
        if pairs:
            names = [p[0] for p in pairs][::-1]
            numbers = [p[1] for p in pairs][::-1]
            bars = axes.barh(names, numbers, color=_COLOURS[0])
            axes.bar_label(bars, labels=[f"{v:g}" for v in numbers], padding=3, fontsize=8)
        else:
            axes.text(0.5, 0.5, "nothing in this period", ha="center", va="center",
                      transform=axes.transAxes)
            axes.set_yticks([])
        axes.set_xlabel(unit)
        axes.spines[["top", "right"]].set_visible(False)
        return _svg(figure)


def timeline_chart(title: str, hours: Sequence[str],
                   series: Sequence[tuple[str, Sequence[int]]]) -> str:
    """Volumes per hour, one line per series, as an SVG document."""
    with _LOCK:
        figure = _figure(9, 3.6)
        axes = figure.add_subplot()
        axes.set_title(title, loc="left", fontsize=11)
        positions = range(len(hours))
        for (name, values), colour in zip(series, _COLOURS, strict=False):
            axes.plot(positions, values, label=name, color=colour, linewidth=1.4)
        step = max(1, len(hours) // 8)
        axes.set_xticks(list(positions)[::step], [h[5:] for h in hours][::step], fontsize=7,
                        rotation=30, ha="right")
        axes.set_ylabel("per hour (UTC)")
        axes.legend(fontsize=8, frameon=False, ncols=min(5, max(1, len(series))))
        axes.spines[["top", "right"]].set_visible(False)
        return _svg(figure)
