"""HTML from the Jinja2 templates in reports/ (autoescaped everywhere, undefined names are errors)."""

from __future__ import annotations

import functools
import re
from datetime import datetime
from typing import Any

import jinja2
from markupsafe import Markup, escape

from auditor.resources import data_dir
from auditor.rules.catalog import SEVERITIES

MODES = ("html", "pdf")


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(data_dir("reports"))),
        autoescape=True,  # every template, whatever its name: tenant text is hostile
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["sev_class"] = severity_class
    env.filters["ts"] = timestamp
    env.filters["code_spans"] = code_spans
    return env


_CODE_SPAN = re.compile(r"`([^`]+)`")


def code_spans(text: str | None) -> Markup:
    """Rule prose with its `backtick` spans as <code>; everything is escaped first (rule files are ours,
    but users add their own)."""
    escaped = str(escape(text or ""))
    return Markup(_CODE_SPAN.sub(lambda m: f"<code>{m.group(1)}</code>", escaped))


def severity_class(severity: str | None) -> str:
    """A severity as a CSS class; anything unexpected becomes `sev-unknown` (never tenant text in CSS)."""
    return f"sev-{severity}" if severity in SEVERITIES else "sev-unknown"


def timestamp(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else ""


def render_report(context: dict[str, Any], mode: str, files: dict[str, str]) -> str:
    """The report page: `mode` html (interactive, every failing row) or pdf (print layout, capped rows)."""
    from auditor.report.charts import severity_svg, trend_svg

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    charts = {"trend": trend_svg(context["trend"]), "severity": severity_svg(context["summary"]["fails"])}
    template = environment().get_template("report.html.j2")
    return template.render(**context, mode=mode, charts=charts, files=files)


def render_index(reports: list[dict[str, Any]], generated_at: datetime) -> str:
    """The archive page: every report under the output folder, newest first."""
    return environment().get_template("index.html.j2").render(reports=reports, generated_at=generated_at)
