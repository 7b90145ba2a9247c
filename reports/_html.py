"""``index.html``: the summary table, a line per skipped figure, and every figure with a text of what it shows.

The page loads the one copy of plotly.js beside it (``plotly.min.js``), so the
report folder opens offline and can be moved or zipped as a whole.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

PLOTLY_JS = "plotly.min.js"

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px auto; max-width: 1280px;
       padding: 0 16px; color: #222; line-height: 1.45; }
h1 { margin-bottom: 4px; } h2 { margin-top: 36px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.meta { color: #555; } .winner { font-size: 1.1em; background: #eef6ee; padding: 8px 12px; border-radius: 6px; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f4f4f4; } td.name { text-align: left; } tr.best td { font-weight: bold; background: #f3faf3; }
.note { color: #8a5300; } figure { margin: 0; } .alone { font-size: 0.9em; }
"""


@dataclass
class Section:
    """One figure of the report: file name stem, heading, what it shows; ``note`` when it was skipped."""

    key: str
    title: str
    description: str
    figure: go.Figure | None = None
    note: str | None = None
    #: a warning shown above a figure that is drawn (what its computation warned)
    caveat: str | None = None


def _pct(value: Any) -> str:
    return "–" if value is None else f"{value:.2%}"


def _mean_std(mean: float | None, std: float | None) -> str:
    """``"97.50% ± 0.40%"``; ``"97.50%"`` without a std, ``"–"`` without a mean."""
    return "–" if mean is None else _pct(mean) + ("" if std is None else f" ± {std:.2%}")


def best_first(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Summary rows by best validation accuracy, highest first, rows without one last."""
    return sorted(summary, key=lambda r: (r["best_val_acc"] is None, -(r["best_val_acc"] or 0)))


def summary_table(summary: list[dict[str, Any]]) -> str:
    """The summary rows as an HTML table, best first."""
    head = ("neuron", "surrogate", "backprop", "trials", "complete", "pruned", "failed", "running / waiting",
            "best val. acc.", "mean ± std val. acc.", "test acc. of best", "best trial")
    out = ["<table>", "<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for i, r in enumerate(best_first(summary)):
        spread = _mean_std(r.get("mean_val_acc"), r.get("std_val_acc"))
        best = "–" if r.get("best_trial") is None else f"{html.escape(str(r.get('best_study')))} #{r['best_trial']}"
        cells = [f'<td class="name">{html.escape(str(r[k]))}</td>' for k in ("neuron", "surrogate", "backprop")]
        cells += [f"<td>{r.get(k, '')}</td>" for k in ("trials", "finished", "pruned", "failed")]
        cells += [f"<td>{r.get('running') or 0} / {r.get('waiting') or 0}</td>", f"<td>{_pct(r['best_val_acc'])}</td>",
                  f"<td>{spread}</td>", f"<td>{_pct(r.get('best_test_acc'))}</td>", f'<td class="name">{best}</td>']
        css = ' class="best"' if i == 0 and r["best_val_acc"] is not None else ""
        out.append(f"<tr{css}>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def index_html(title: str, meta: list[str], winner: str | None, summary: list[dict[str, Any]], sections: list[Section],
               files: list[str], embed: str = "html", ranking: str | None = None,
               per_neuron: list[str] | None = None) -> str:
    """The whole ``index.html``; ``embed`` is ``html`` (interactive figures) or ``png`` (the PNG files, no script);
    ``ranking`` (HTML) is a comparison's ranking, shown first; ``per_neuron`` the original code's per-neuron CSV files
    (``<neuron>/BP_results/<surrogate>.csv``, ...), linked by neuron when that layout was written."""
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{html.escape(title)}</title>", f"<style>{_STYLE}</style>"]
    if embed == "html":
        parts.append(f'<script src="{PLOTLY_JS}"></script>')
    parts += ["</head><body>", f"<h1>{html.escape(title)}</h1>"]
    parts += [f'<p class="meta">{html.escape(line)}</p>' for line in meta]
    if winner:
        parts.append(f'<p class="winner">{html.escape(winner)}</p>')
    parts.append("<h2>Contents</h2><ul>")
    if ranking:
        parts.append('<li><a href="#ranking">Ranking of the comparison over seeds</a></li>')
    parts.append('<li><a href="#summary">Summary per neuron × surrogate × backprop combination</a></li>')
    for s in sections:
        parts.append(f'<li><a href="#{s.key}">{html.escape(s.title)}</a>'
                     + (f' <span class="note">(skipped: {html.escape(s.note)})</span>' if s.note else "") + "</li>")
    links = ", ".join(f'<a href="{html.escape(f)}">{html.escape(f)}</a>' for f in files)
    parts.append(f"</ul><p>Files: {links}</p>")
    if per_neuron:
        parts.append('<p id="per-neuron">Per-neuron tables (the original code\'s layout: one file per surrogate in '
                     "<code>BP_results</code>, one per backprop method in <code>SG_results</code>):</p><ul>")
        by_neuron: dict[str, list[str]] = {}
        for f in per_neuron:
            by_neuron.setdefault(f.split("/")[0], []).append(f)
        for neuron, paths in by_neuron.items():
            items = ", ".join(f'<a href="{html.escape(f)}">{html.escape(f.split("/", 1)[1])}</a>' for f in paths)
            parts.append(f"<li>{html.escape(neuron)}: {items}</li>")
        parts.append("</ul>")
    if ranking:
        parts += ['<h2 id="ranking">Ranking of the comparison over seeds</h2>', ranking]
    parts += ['<h2 id="summary">Summary per neuron × surrogate × backprop combination</h2>',
              "<p>One row per combination, best first. <em>Complete</em> trials trained to the end (or stopped early "
              "by patience); <em>pruned</em> ones were stopped by the pruner. Best, mean and standard deviation are "
              "over the validation accuracy of complete trials; the test accuracy is that of the best trial.</p>",
              summary_table(summary)]
    skipped = [s for s in sections if s.note]
    if skipped:
        parts.append("<h2>Skipped figures</h2><ul>")
        parts += [f'<li class="note">{html.escape(s.title)}: {html.escape(s.note or "")}</li>' for s in skipped]
        parts.append("</ul>")
    for s in sections:
        parts.append(f'<section id="{s.key}"><h2>{html.escape(s.title)}</h2><p>{html.escape(s.description)}</p>')
        if s.caveat and not s.note:
            parts.append(f'<p class="note">{html.escape(s.caveat)}</p>')
        if s.note:
            parts.append(f'<p class="note">Skipped: {html.escape(s.note)}</p>')
        elif embed == "html":
            parts.append(pio.to_html(s.figure, include_plotlyjs=False, full_html=False, div_id=f"figure-{s.key}",
                                     config={"responsive": True}))
            parts.append(f'<p class="alone"><a href="figures/{s.key}.html">open this figure alone</a></p>')
        else:
            parts.append(f'<figure><img src="figures/{s.key}.png" alt="{html.escape(s.title)}" style="max-width:100%">'
                         "</figure>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)
