"""Optuna's own plots (optimization history, parameter importances, parallel coordinates) over the whole study.

Per-combination studies each hold one neuron/surrogate/backprop, so those three are
not parameters there. The plots therefore run on one in-memory study that holds
every finished trial of every matched study with ``neuron``, ``surrogate`` and
``backprop`` added as categorical parameters: importances then rank them beside
the tuned hyperparameters, whichever way the study was split.
"""

from __future__ import annotations

import warnings
from typing import Any

import optuna
import plotly.graph_objects as go
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState
from plotly.colors import sample_colorscale

from objectives import COMBINATION

from ._load import StudyData

#: fewer complete trials than this and parameter importances are noise: the plot is skipped with a note. PED-ANOVA
#: compares the top 10 % of the trials with all of them; below 20 that top holds one trial, and every parameter
#: that trial has looks equally important (a grid of 8 gave neuron, surrogate and backprop 1/3 each)
MIN_IMPORTANCE_TRIALS = 20


def merged_study(data: StudyData) -> optuna.Study:
    """An in-memory study of every complete and pruned trial of ``data``, in start order, the combination as parameters.

    Each trial keeps its study and number in the user attributes ``study`` and ``number``.
    """
    combos = {id(t): r.combination.as_dict() for (_, t), r in zip(data.trials, data.records)}
    finished = [(s, t) for s, t in data.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    choices = {k: tuple(sorted({c[k] for c in combos.values()})) for k in COMBINATION}
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # "a new study created in memory" is noise here
    try:
        merged = optuna.create_study(direction="maximize", study_name=data.name)
    finally:
        optuna.logging.set_verbosity(verbosity)
    # (no finished trial yet: no choices, and nothing to add)
    combination = {k: CategoricalDistribution(choices[k]) for k in COMBINATION} if finished else {}
    far_future = 1e18
    for study_name, t in sorted(finished, key=lambda st: (st[1].datetime_start.timestamp() if st[1].datetime_start
                                                           else far_future, st[0], st[1].number)):
        try:
            merged.add_trial(_copy(study_name, t, {**t.params, **combos[id(t)]}, {**t.distributions, **combination}))
        except ValueError:
            # the same parameter name with another kind of distribution in another study: keep the combination only
            merged.add_trial(_copy(study_name, t, dict(combos[id(t)]), dict(combination)))
    return merged


def _copy(study_name: str, t: optuna.trial.FrozenTrial, params: dict[str, Any],
          distributions: dict[str, Any]) -> optuna.trial.FrozenTrial:
    """``t`` with these parameters, its study and number in the user attributes ``study`` and ``number``."""
    return optuna.trial.create_trial(
        # the validation accuracy: a study's first objective (``t.value`` raises in a study of several)
        state=t.state, value=t.values[0] if t.state == TrialState.COMPLETE else None, params=params,
        distributions=distributions, intermediate_values=dict(t.intermediate_values),
        user_attrs={"study": study_name, "number": t.number})


def _varying_params(study: optuna.Study) -> list[str]:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    names = sorted({p for t in complete for p in t.params})
    return [p for p in names if len({repr(t.params.get(p)) for t in complete}) > 1]


def _complete(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def importance_records(study: optuna.Study) -> tuple[list[dict[str, Any]], str | None]:
    """``[{param, importance}]`` (PED-ANOVA, normalized to sum 1, most important first) and what Optuna warned
    while computing them (``None`` when nothing), or no records and a note why not."""
    n = _complete(study)
    if n < MIN_IMPORTANCE_TRIALS:
        trials = f"{n} complete trial{'s' if n != 1 else ''}"
        return [], f"{trials}; parameter importances need at least {MIN_IMPORTANCE_TRIALS}"
    params = _varying_params(study)
    if not params:
        return [], "no parameter takes more than one value among the complete trials"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # each of PED-ANOVA's warnings once, to show beside the figure
        importances = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(), params=params)
    said = list(dict.fromkeys(" ".join(str(w.message).split()) for w in caught))
    records = [{"param": k, "importance": float(v)} for k, v in importances.items()]
    return records, ("Optuna warns: " + " ".join(said)) if said else None


def importance_figure(records: list[dict[str, Any]]) -> go.Figure:
    """Horizontal bars of parameter importances, most important on top."""
    rows = list(reversed(records))
    fig = go.Figure(go.Bar(x=[r["importance"] for r in rows], y=[r["param"] for r in rows], orientation="h",
                           text=[f"{r['importance']:.2f}" for r in rows], marker={"color": "#3366cc"},
                           hovertemplate="%{y}: importance %{x:.3f}<extra></extra>"))
    title = "Which parameters matter: importance for validation accuracy (PED-ANOVA; sums to 1)"
    fig.update_layout(title={"text": title, "x": 0.01, "xanchor": "left"}, template="plotly_white",
                      height=200 + 40 * len(rows))
    fig.update_xaxes(title="importance (share of the total, 0 to 1)", rangemode="tozero")
    fig.update_yaxes(title="parameter")
    return fig


def parallel_figure(study: optuna.Study) -> tuple[go.Figure | None, str | None]:
    """Optuna's parallel-coordinate plot over the parameters that vary, or a note why not; made readable
    (:func:`_readable_parallel`)."""
    if _complete(study) == 0:
        return None, "no complete trial yet"
    params = _varying_params(study) or None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig = optuna.visualization.plot_parallel_coordinate(study, params=params, target_name=TARGET)
    return _readable_parallel(fig), None


TARGET = "validation accuracy"


def _readable_parallel(fig: go.Figure) -> go.Figure:
    """Optuna draws each trial as a line over the axes (one x position each), its axes' ticks as annotations
    and its colour bar on a marker trace of no points. Here: lines in Viridis (Optuna's lightest blue is white on
    white), the accuracy in % on its axis, in the hover and on the colour bar, larger ticks and axis names."""
    names = list(fig.layout.xaxis.ticktext or ())
    target = names.index(TARGET) if TARGET in names else None
    coloured = False
    for trace in fig.data:
        if trace.mode == "markers" and trace.marker.colorbar is not None:
            coloured = True
            trace.marker.colorscale = "Viridis"
            trace.marker.colorbar = {"title": {"text": "validation<br>accuracy"}, "tickformat": ".0%"}
    for trace in fig.data:
        if trace.mode != "lines" or target is None or not coloured:
            continue
        position = trace.y[target]  # 0 (worst) to 1 (best) on the accuracy axis
        trace.line = {"color": sample_colorscale("Viridis", [position])[0], "width": 2, "dash": "solid"}
        trace.opacity = 0.8
        trace.customdata = [[name, f"{float(value):.2%}" if name == TARGET else value]
                            for name, value in trace.customdata]
    for note in fig.layout.annotations:
        note.font = {"size": 12, "color": "#333"}
        if note.x == target:
            note.text = f"{float(note.text):.1%}"
    fig.layout.title = {"text": "Parallel coordinates: each line is a complete trial through its parameters, "
                                "coloured by validation accuracy", "x": 0.01, "xanchor": "left"}
    fig.update_xaxes(tickfont={"size": 14})
    fig.update_layout(template="plotly_white", height=540, margin={"t": 90, "l": 90, "r": 60, "b": 60})
    return fig
