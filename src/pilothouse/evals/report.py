"""Reports of an evaluation: a terminal table, the JSON log, an HTML page, a comparison.

All three read an `EvalLog`; the JSON log is the artefact (every sample with its
journal events), the table and the HTML page are views of it. Pure functions: they
return renderables or text, the CLI prints them.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from pilothouse.evals.runner import Cell, EvalLog, SampleRecord
from pilothouse.events import event_from_dict
from pilothouse.exceptions import ConfigurationError


def _pct(cell: Cell) -> str:
    return f"{cell.rate * 100:.0f}% ({cell.passed}/{cell.n})"


def success_table(log: EvalLog) -> Table:
    """Scenarios as rows, models as columns, success rate per cell, and a Total row."""
    table = Table(title=f"{log.suite}: success over {log.epochs} epoch(s)")
    table.add_column("scenario")
    for m in log.models:
        table.add_column(m, justify="right")
    for sc in log.scenarios:
        table.add_row(sc, *(_pct(log.cell(sc, m)) for m in log.models))
    table.add_section()
    totals = [log.total(m) for m in log.models]
    table.add_row("[bold]Total[/]", *(f"[bold]{_pct(c)}[/]" for c in totals))
    ks = sorted({k for c in totals for k in c.pass_hat} - {1})
    for k in ks:
        table.add_row(
            f"pass^{k}", *(f"{c.pass_hat[k] * 100:.0f}%" if k in c.pass_hat else "" for c in totals)
        )
    table.add_row("tokens", *(f"{c.input_tokens + c.output_tokens:,}" for c in totals))
    table.add_row("cost", *("—" if c.cost is None else f"${c.cost:.4f}" for c in totals))
    table.add_row("latency (mean s)", *(f"{c.latency_mean:.2f}" for c in totals))
    table.add_row(
        "failures",
        *(", ".join(f"{k} {v}" for k, v in sorted(c.failures.items())) or "—" for c in totals),
    )
    return table


def markdown_table(log: EvalLog) -> str:
    """The success table as Markdown (for docs and pull requests)."""
    lines = ["| scenario | " + " | ".join(log.models) + " |"]
    lines.append("| --- |" + " ---: |" * len(log.models))
    for sc in log.scenarios:
        lines.append(f"| {sc} | " + " | ".join(_pct(log.cell(sc, m)) for m in log.models) + " |")
    lines.append(
        "| **Total** | " + " | ".join(f"**{_pct(log.total(m))}**" for m in log.models) + " |"
    )
    return "\n".join(lines)


def write_log(log: EvalLog, path: str | Path) -> Path:
    """Write the JSON log (every sample with its journal events)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(log.to_dict(), ensure_ascii=False, default=str), encoding="utf-8")
    return path


def read_log(path: str | Path) -> EvalLog:
    """Read a JSON log written by `write_log`."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"no evaluation log at {path}") from None
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{path} is not an evaluation log (not JSON: {exc})") from None
    if not isinstance(data, dict) or "samples" not in data:
        raise ConfigurationError(f"{path} is not an evaluation log")
    return EvalLog.from_dict(data)


def describe_event(d: dict[str, Any], limit: int = 400) -> str:
    """One line for a stored event; event types this version does not know still show."""
    from pilothouse.trace import describe

    try:
        return describe(event_from_dict(d), limit=limit)
    except (ValueError, KeyError, TypeError):
        rest = {k: v for k, v in d.items() if k not in ("type", "run_id", "seq", "ts", "step")}
        text = json.dumps(rest, ensure_ascii=False, default=str)
        return f"{d.get('type')}  {text[:limit]}"


@dataclass(slots=True)
class Change:
    """One cell whose success rate moved between two logs."""

    scenario: str
    model: str
    before: float
    after: float

    @property
    def delta(self) -> float:
        return self.after - self.before


def compare(a: EvalLog, b: EvalLog) -> tuple[list[Change], list[Change], list[Change]]:
    """(regressed, improved, unchanged) cells of B relative to A.

    Cells are matched by (scenario, model); when the logs have one model each under
    different names, the two models are compared with each other.
    """
    pairs: list[tuple[str, str]] = [(m, m) for m in a.models if m in b.models]
    if not pairs and len(a.models) == 1 and len(b.models) == 1:
        pairs = [(a.models[0], b.models[0])]
    regressed: list[Change] = []
    improved: list[Change] = []
    same: list[Change] = []
    for ma, mb in pairs:
        for sc in a.scenarios:
            if sc not in b.scenarios:
                continue
            before, after = a.cell(sc, ma).rate, b.cell(sc, mb).rate
            label = ma if ma == mb else f"{ma} → {mb}"
            change = Change(sc, label, before, after)
            (regressed if after < before else improved if after > before else same).append(change)
    regressed.sort(key=lambda c: c.delta)
    improved.sort(key=lambda c: -c.delta)
    return regressed, improved, same


# --------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px}
th{background:#f3f3f3}td.num{text-align:right}tr.total td{font-weight:bold}
details{margin:.4em 0;border:1px solid #ddd;border-radius:4px;padding:.3em .6em}
summary{cursor:pointer}pre{white-space:pre-wrap;font-size:12px;background:#fafafa;padding:.5em}
.fail{color:#b00}.ok{color:#070}svg text{font-size:11px;font-family:sans-serif}
"""
_COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1"]


def _bars_svg(log: EvalLog) -> str:
    """Grouped bars: success rate per scenario (groups) and model (colours)."""
    width_per_group = max(30, 14 * len(log.models) + 12)
    left, top, height = 40, 20, 200
    width = left + width_per_group * len(log.scenarios) + 20
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 150}" '
        f'role="img" aria-label="success per scenario and model">'
    ]
    for pct in (0, 50, 100):
        y = top + height - pct * height / 100
        parts.append(
            f'<line x1="{left}" x2="{width}" y1="{y}" y2="{y}" stroke="#ddd"/>'
            f'<text x="4" y="{y + 4}">{pct}%</text>'
        )
    bar = (width_per_group - 12) / max(1, len(log.models))
    for g, sc in enumerate(log.scenarios):
        x0 = left + g * width_per_group + 6
        for i, m in enumerate(log.models):
            cell = log.cell(sc, m)
            h = cell.rate * height
            parts.append(
                f'<rect x="{x0 + i * bar:.1f}" y="{top + height - h:.1f}" width="{bar - 1:.1f}" '
                f'height="{h:.1f}" fill="{_COLORS[i % len(_COLORS)]}">'
                f"<title>{html.escape(sc)} · {html.escape(m)}: {_pct(cell)}</title></rect>"
            )
        tx = x0 + (width_per_group - 12) / 2
        parts.append(
            f'<text transform="translate({tx:.1f},{top + height + 8}) rotate(50)">'
            f"{html.escape(sc[:28])}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _scatter_svg(log: EvalLog) -> str:
    """One point per model: total success rate against cost (tokens when cost is unknown)."""
    totals = {m: log.total(m) for m in log.models}
    use_cost = all(c.cost is not None for c in totals.values())
    xs = {
        m: (c.cost or 0.0) if use_cost else float(c.input_tokens + c.output_tokens)
        for m, c in totals.items()
    }
    xmax = max(xs.values(), default=0.0) or 1.0
    left, top, w, h = 50, 20, 420, 220
    label = "cost (USD)" if use_cost else "tokens (no cost known)"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + w + 160}" height="{h + 70}" '
        f'role="img" aria-label="success against cost">',
        f'<line x1="{left}" y1="{top + h}" x2="{left + w}" y2="{top + h}" stroke="#888"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + h}" stroke="#888"/>',
        f'<text x="{left + w / 2 - 40}" y="{top + h + 35}">{label}</text>',
        f'<text x="4" y="{top + 4}">100%</text><text x="10" y="{top + h}">0%</text>',
        f'<text x="{left + w - 60}" y="{top + h + 15}">{xmax:.4g}</text>',
    ]
    for i, (m, c) in enumerate(totals.items()):
        x = left + xs[m] / xmax * w
        y = top + h - c.rate * h
        color = _COLORS[i % len(_COLORS)]
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6" fill="{color}">'
            f"<title>{html.escape(m)}: {_pct(c)}, {xs[m]:.4g}</title></circle>"
            f'<text x="{x + 9:.1f}" y="{y + 4:.1f}">{html.escape(m)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _legend(log: EvalLog) -> str:
    return " ".join(
        f'<span style="color:{_COLORS[i % len(_COLORS)]}">■</span> {html.escape(m)}'
        for i, m in enumerate(log.models)
    )


def _sample_html(s: SampleRecord) -> str:
    lines = "\n".join(
        f"{e.get('seq', '?'):>3} s{e.get('step', '?')} {describe_event(e)}" for e in s.events
    )
    summary = (
        f'<span class="fail">{html.escape(s.failure or "")}</span> · '
        f"{html.escape(s.scenario)} · {html.escape(s.model)} · epoch {s.epoch} · "
        f"{html.escape(s.message[:160])}"
    )
    return (
        f"<details><summary>{summary}</summary>"
        f"<p>runs: {html.escape(', '.join(s.run_ids) or '—')} · "
        f"{s.input_tokens + s.output_tokens} tokens · {s.latency:.2f} s</p>"
        f"<p>{html.escape(s.message)}</p><pre>{html.escape(lines)}</pre></details>"
    )


def html_report(log: EvalLog) -> str:
    """A self-contained page (inline CSS and SVG, no network): table, charts, failures."""
    head = "".join(f"<th>{html.escape(m)}</th>" for m in log.models)
    rows = []
    for sc in log.scenarios:
        cells = "".join(f'<td class="num">{_pct(log.cell(sc, m))}</td>' for m in log.models)
        rows.append(f"<tr><td>{html.escape(sc)}</td>{cells}</tr>")
    totals = [log.total(m) for m in log.models]
    rows.append(
        '<tr class="total"><td>Total</td>'
        + "".join(f'<td class="num">{_pct(c)}</td>' for c in totals)
        + "</tr>"
    )
    ks = sorted({k for c in totals for k in c.pass_hat})
    for k in ks:
        rows.append(
            f"<tr><td>pass^{k}</td>"
            + "".join(
                f'<td class="num">{c.pass_hat[k] * 100:.1f}%</td>' if k in c.pass_hat else "<td/>"
                for c in totals
            )
            + "</tr>"
        )
    extra = [
        ("tokens", [f"{c.input_tokens + c.output_tokens:,}" for c in totals]),
        ("cost", ["—" if c.cost is None else f"${c.cost:.4f}" for c in totals]),
        ("mean latency", [f"{c.latency_mean:.2f} s" for c in totals]),
        (
            "failures",
            [", ".join(f"{k} {v}" for k, v in sorted(c.failures.items())) or "—" for c in totals],
        ),
    ]
    for name, values in extra:
        rows.append(
            f"<tr><td>{name}</td>"
            + "".join(f'<td class="num">{html.escape(v)}</td>' for v in values)
            + "</tr>"
        )
    failures = log.failures()
    failing = "".join(_sample_html(s) for s in failures) or '<p class="ok">No failing sample.</p>'
    title = html.escape(f"Evaluation {log.suite} ({log.eval_id or 'log'})")
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{_CSS}</style></head><body><h1>{title}</h1>"
        f"<p>{len(log.samples)} samples · {log.epochs} epoch(s) · models: "
        f"{html.escape(', '.join(log.models))}</p>"
        f"<h2>Success</h2><table><tr><th>scenario</th>{head}</tr>{''.join(rows)}</table>"
        f"<h2>Success per scenario and model</h2><p>{_legend(log)}</p>{_bars_svg(log)}"
        f"<h2>Success against cost</h2>{_scatter_svg(log)}"
        f"<h2>Failing samples ({len(failures)})</h2>{failing}</body></html>"
    )


def write_html(log: EvalLog, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html_report(log), encoding="utf-8")
    return path
