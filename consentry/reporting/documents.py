"""The reports as documents: HTML that reads without JavaScript (charts inlined as SVG),
CSV and JSON, written under a temporary name and moved into place."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from consentry.reporting.charts import bar_chart
from consentry.reporting.transparency import TransparencyReport, csv_rows

_templates = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                         autoescape=select_autoescape(["html"]), trim_blocks=True)


def percent(share: float | None) -> str:
    return "–" if share is None else f"{share * 100:.1f}%"


def hours(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def inline_svg(svg: str) -> Markup:
    """An SVG document as an element to put in HTML (without its XML prologue)."""
    return Markup(svg[svg.index("<svg"):])


def render(name: str, **context: Any) -> str:
    return _templates.get_template(name).render(pct=percent, hours=hours, **context)


def transparency_charts(report: TransparencyReport) -> dict[str, str]:
    """The report's charts as SVG documents, by name."""
    refused: dict[str, int] = {}
    for r in report.refusals:
        label = f"{r.surface} {r.clause}"
        refused[label] = refused.get(label, 0) + r.refused
    regimes = [t for t in report.takedowns if t.regime != "all"]
    return {
        "refusals": bar_chart("Refusals by surface and clause", list(refused),
                              list(refused.values()), unit="attempts refused"),
        "takedowns": bar_chart("Takedown requests: median hours to removal",
                               [t.regime for t in regimes],
                               [round((t.median_time_to_removal_s or 0) / 3600, 1)
                                for t in regimes], unit="hours"),
    }


def transparency_body(report: TransparencyReport, chart: Callable[[str], Markup]) -> Markup:
    """The report's sections, for a page that supplies the charts (``chart(name)``)."""
    return Markup(render("_transparency_body.html", report=report,
                         chart=chart))


def transparency_html(report: TransparencyReport) -> str:
    charts = transparency_charts(report)
    return render("transparency.html", report=report,
                  period=f"{report.period_start.isoformat()} to "
                         f"{report.period_end.isoformat()} (end exclusive)",
                  chart=lambda name: Markup("<figure>") + inline_svg(charts[name])
                  + Markup("</figure>"))


def transparency_csv(report: TransparencyReport) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("section", "key", "measure", "value"))
    writer.writerows(csv_rows(report))
    return buffer.getvalue()


def transparency_json(report: TransparencyReport) -> str:
    return json.dumps(report.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, so that a
    failure leaves the previous file (if any) whole."""
    temporary = path.with_name(f".{path.name}.partial")
    try:
        with temporary.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_transparency(report: TransparencyReport, folder: Path) -> list[Path]:
    """``transparency.html``, ``.csv`` and ``.json`` in ``folder`` (made if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (("transparency.html", transparency_html(report)),
                       ("transparency.csv", transparency_csv(report)),
                       ("transparency.json", transparency_json(report))):
        path = folder / name
        write_atomically(path, text.encode())
        written.append(path)
    return written
