"""The report inside optuna-dashboard: the key figures and a Markdown note saved into each study.

This is the report's one write to the database, one transaction. Figures are saved
under fixed ids, so running the report again replaces them. The note is the study's own note in
optuna-dashboard, which users may also edit: the report replaces only its own
block (from its heading to its closing line) and keeps any text the user wrote.
"""

from __future__ import annotations

import shlex
from typing import Any

import optuna
import optuna_dashboard
import plotly.graph_objects as go

from storage import open_storage, set_study_system_attrs

from ._comparison import ranking_markdown
from ._html import _mean_std, _pct, best_first
from ._load import StudyData

NOTE_START = "## snn-study report"
#: the height optuna-dashboard gives a saved figure, in pixels
DASHBOARD_HEIGHT = 450
#: how to read the dashboard's own plots for a study whose main parameters (neuron, surrogate, backprop) are
#: categories: which of them mean little here, and where to look instead
READING = [
    "**Reading the dashboard's own plots here.** Neuron, surrogate and backprop are categories, not numbers: the "
    "*Contour* plot interpolates between categories and means nothing for them; the *Slice* and *Rank* plots put "
    "categories in an arbitrary order; *Hyperparameter Importance* is noise with fewer than about 20 complete "
    "trials; with the grid sampler the *History* is the grid's order, not a search converging. Compare "
    "combinations in the report's heatmap (`figures/heatmap.html`: best validation and test accuracy and the "
    "trials of every neuron × surrogate cell) and distributions, saved above as "
    "`snn-report-best-accuracy-heatmap` and `snn-report-accuracy-by-factor`; pruned trials are in both.",
]
NOTE_END = "*(end of the snn-study report; text below this line is kept when the report is written again)*"


def note_markdown(name: str, summary: list[dict[str, Any]], winner: str | None, meta: list[str],
                  figure_ids: list[str], comparison: dict[str, Any] | None = None) -> str:
    """The report's Markdown block: counts, the winner (a comparison's ranking) and the summary table, best first."""
    lines = [NOTE_START, "", *[f"{line}  " for line in meta], ""]
    if comparison is not None:
        lines += ranking_markdown(comparison)
    elif winner:
        lines += [f"**{winner}**", ""]
    lines += ["| neuron | surrogate | backprop | complete / trials | pruned | failed | best val. acc. | mean ± std | "
              "test acc. of best |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in best_first(summary):
        spread = _mean_std(r["mean_val_acc"], r["std_val_acc"])
        lines.append(f"| {r['neuron']} | {r['surrogate']} | {r['backprop']} | {r['finished']} / {r['trials']} | "
                     f"{r['pruned']} | {r['failed']} | {_pct(r['best_val_acc'])} | {spread} | "
                     f"{_pct(r['best_test_acc'])} |")
    lines += ["", f"Figures saved with this note: {', '.join(f'`{i}`' for i in figure_ids)}. "
              f"The full report: `snn-study report --study {shlex.quote(name)} --out DIR`.", "", *READING, "",
              NOTE_END]
    return "\n".join(lines)


def merge_note(existing: str, block: str) -> str:
    """``block`` first, then whatever ``existing`` holds outside a previous report block."""
    start, end = existing.find(NOTE_START), existing.find(NOTE_END)
    if start != -1 and end != -1 and end > start:
        existing = existing[:start] + existing[end + len(NOTE_END):]
    rest = existing.strip()
    return block + ("\n\n" + rest if rest else "") + "\n"


#: the figures saved into optuna-dashboard: key -> (graph object id, a title short enough for its half-width cards);
#: a comparison's report adds its forest plot first
COMPARISON_FIGURES = {"forest": ("snn-report-comparison-forest", "Ranking: mean and CI over seeds per combination")}
DASHBOARD_FIGURES = {
    "heatmap": ("snn-report-best-accuracy-heatmap", "Best validation accuracy: neuron × surrogate, per backprop"),
    "val_curves": ("snn-report-validation-curves", "Validation accuracy per epoch (dashed: pruned)"),
    "distributions": ("snn-report-accuracy-by-factor", "Validation accuracy by neuron, surrogate, backprop"),
}


def save_to_dashboard(data: StudyData, figures: dict[str, Any], summary: list[dict[str, Any]], winner: str | None,
                      meta: list[str], comparison: dict[str, Any] | None = None) -> tuple[list[str], list[str]]:
    """Save the key ``figures`` (by report key) and the note into every study of ``data``, all in one transaction;
    returns the study names and the ids of the figures saved.

    optuna-dashboard keeps a figure's JSON and a note in chunks of 2,045 characters, one study system attribute
    each, and its own ``save_*`` functions commit them one by one: a report killed among them would leave a figure
    that is no JSON at all. Here they run on a copy of each study's attributes in memory, and what they changed is
    written in one transaction (:func:`storage.set_study_system_attrs`): the dashboard sees the old report or the
    new one, whole.
    """
    saved = {}
    shown = {**COMPARISON_FIGURES, **DASHBOARD_FIGURES} if comparison is not None else DASHBOARD_FIGURES
    for key, (graph_id, title) in shown.items():
        if figures.get(key) is not None:
            # a copy for the dashboard's cards, which draw every figure in a box 450 px high
            fig = go.Figure(figures[key])
            fig.update_layout(title={"text": title}, height=DASHBOARD_HEIGHT, legend={"font": {"size": 10}},
                              margin={"t": 60, "l": 70, "r": 20, "b": 70})
            fig.update_annotations(font_size=10)
            if len(fig.layout.annotations) > 3:  # a grid of small panels: one axis title per row would overlap
                fig.update_yaxes(title_text=None)
            saved[graph_id] = fig
    block = note_markdown(data.name, summary, winner, meta, list(saved), comparison)
    storage = open_storage(data.url, create=False, heartbeat_interval=None)
    changes = {}
    for study_name in data.study_names:
        study_id = storage.get_study_id_from_name(study_name)
        current = storage.get_study_system_attrs(study_id)
        staged, staged_id = _staged(current)
        study = optuna.load_study(study_name=_STAGED, storage=staged)
        for graph_id, fig in saved.items():
            optuna_dashboard.save_plotly_graph_object(study, fig, graph_object_id=graph_id)
        optuna_dashboard.save_note(study, merge_note(optuna_dashboard.get_note(study) or "", block))
        after = staged.get_study_system_attrs(staged_id)
        changes[study_id] = {k: v for k, v in after.items() if k not in current or current[k] != v}
    set_study_system_attrs(storage, changes)
    return list(data.study_names), list(saved)


_STAGED = "staged"


def _staged(attrs: dict[str, Any]) -> tuple[optuna.storages.InMemoryStorage, int]:
    """An in-memory storage holding one study with the system attributes ``attrs``, and the study's id."""
    staged = optuna.storages.InMemoryStorage()
    study_id = staged.create_new_study([optuna.study.StudyDirection.MAXIMIZE], _STAGED)
    for key, value in attrs.items():
        staged.set_study_system_attr(study_id, key, value)
    return staged, study_id
