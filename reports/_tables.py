"""The report's tables as plain rows (lists of dicts): trials, epochs, one summary row per combination.

Rows are built first and written second, so tests and the figures read the same
numbers the CSV files hold. Floats are written with ``repr`` (every digit), an
absent value as an empty cell.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from objectives import COMBINATION, layer_names, path_part
from storage import write_atomic

from . import _cost_tables
from ._load import StudyData, stage_of

#: trials.csv columns before the parameters (``params_<name>``) and after them (spike rates in between)
TRIAL_HEAD = ("study", "number", "state", "stage", *COMBINATION, "value")
TRIAL_TAIL = ("duration_s", "epochs", "best_epoch", "test_acc")
TRIAL_END = ("n_params", "train_samples_per_s", "stopped_early", "pruned_at", "failure", "weights_artifact",
             "datetime_start", "datetime_complete")
EPOCH_HEAD = ("study", "number", *COMBINATION, "state", "epoch", "train_loss", "train_acc", "val_acc")
EPOCH_TAIL = ("seconds", "train_samples_per_s")
SUMMARY_COLUMNS = (*COMBINATION, "trials", "finished", "pruned", "failed", "running", "waiting",
                   "best_val_acc", "mean_val_acc", "std_val_acc", "best_test_acc", "best_study", "best_trial",
                   *_cost_tables.SUMMARY_COST_COLUMNS)


def _rate_columns(counts: Iterable[int]) -> list[str]:
    """``spike_rate_<layer>`` columns for every layer count seen (conv layers in order, output last)."""
    most = max(counts, default=0)
    return [f"spike_rate_{name}" for name in layer_names(most)] if most else []


def _rates(values: list[float] | None) -> dict[str, float]:
    if not values:
        return {}
    return {f"spike_rate_{name}": float(v) for name, v in zip(layer_names(len(values)), values)}


def trial_rows(data: StudyData) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per trial of every study in ``data``, and the column order of ``trials.csv``.

    ``stage`` is the comparison stage (``tune``, ``replicate``) of a trial of ``snn-study compare``;
    ``value`` is the trial's best validation accuracy (complete trials only);
    ``epochs`` the epochs it ran (its result, else the epochs it reported);
    ``spike_rate_<layer>`` the training spike rates of the best epoch for a
    complete trial, else those of the last recorded epoch; ``duration_s`` from
    Optuna's start and completion times (empty while it runs); the cost columns
    (``reports._cost_tables``) what the best weights cost on the test set, and with a
    ``val_`` prefix on the validation set.
    """
    last_rates: dict[tuple[str, int], list[float]] = {}
    for e in data.epochs:
        last_rates[(e["study_name"], e["trial_number"])] = e["spike_rates"]
    val_costs = _cost_tables.best_epoch_costs(data)
    pareto = _cost_tables.pareto_flags(data)
    param_names = sorted({p for _, t in data.trials for p in t.params})
    rows, layer_counts = [], []
    for t in data.records:
        rates = list(t.spike_rates) or last_rates.get((t.study, t.number))
        layer_counts.append(len(rates or ()))
        rows.append({
            "study": t.study,
            "number": t.number,
            "state": t.state,
            "stage": t.stage or stage_of(t.study),
            **t.combination.as_dict(),
            "value": t.value,
            **{f"params_{p}": t.params.get(p) for p in param_names},
            "duration_s": t.duration_s,
            "epochs": t.epochs_run,
            "best_epoch": t.best_epoch,
            "test_acc": t.test_acc,
            **_rates(rates),
            **_cost_tables.cost_cells(t, val_costs.get((t.study, t.number)),
                                      None if pareto is None else pareto.get((t.study, t.number))),
            "n_params": t.n_params,
            "train_samples_per_s": t.train_samples_per_s,
            "stopped_early": t.stopped_early,
            "pruned_at": t.pruned_at,
            "failure": t.failure,
            "weights_artifact": t.weights_artifact,
            "datetime_start": t.datetime_start.isoformat() if t.datetime_start else None,
            "datetime_complete": t.datetime_complete.isoformat() if t.datetime_complete else None,
        })
    columns = [*TRIAL_HEAD, *(f"params_{p}" for p in param_names), *TRIAL_TAIL, *_rate_columns(layer_counts),
               *_cost_tables.cost_columns(data.records, pareto is not None), *TRIAL_END]
    return rows, columns


def epoch_rows(data: StudyData, trials: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per trial and epoch from the per-epoch table, with the trial's combination and state."""
    by_trial = {(r["study"], r["number"]): r for r in trials}
    rows = []
    for e in data.epochs:
        trial = by_trial.get((e["study_name"], e["trial_number"]), {})
        rows.append({
            "study": e["study_name"],
            "number": e["trial_number"],
            **{k: trial.get(k) for k in COMBINATION},
            "state": trial.get("state"),
            "epoch": e["epoch"],
            "train_loss": e["train_loss"],
            "train_acc": e["train_acc"],
            "val_acc": e["val_acc"],
            **_rates(e["spike_rates"]),
            **_cost_tables.epoch_cost_cells(e),
            "seconds": e["seconds"],
            "train_samples_per_s": e["train_samples_per_s"],
        })
    columns = [*EPOCH_HEAD, *_rate_columns(len(e["spike_rates"]) for e in data.epochs), *_cost_tables.VAL_COLUMNS,
               *EPOCH_TAIL]
    return rows, columns


def best_trial(trials: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The complete trial row with the highest validation accuracy (the first one on a tie, so the choice is stable)."""
    done = [r for r in trials if r["state"] == "COMPLETE" and r["value"] is not None]
    return max(done, key=lambda r: r["value"]) if done else None


def summary_rows(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per neuron-surrogate-backprop combination that has a trial, sorted by the three names.

    ``finished`` counts complete trials; ``best``/``mean``/``std`` are over their
    validation accuracies (``std`` the sample standard deviation, empty with fewer
    than two); ``best_test_acc`` is the test accuracy of the best trial, which
    ``best_study``/``best_trial`` name; ``best_<cost>`` its test costs and ``mean_<cost>``
    their means over the complete trials (``reports._cost_tables``).
    """
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in trials:
        groups[tuple(r[k] for k in COMBINATION)].append(r)
    out = []
    for key in sorted(groups):
        rows = groups[key]
        values = [r["value"] for r in rows if r["state"] == "COMPLETE" and r["value"] is not None]
        best = best_trial(rows)
        count: defaultdict[str, int] = defaultdict(int)
        for r in rows:
            count[r["state"]] += 1
        out.append({
            **dict(zip(COMBINATION, key)),
            "trials": len(rows),
            "finished": count["COMPLETE"],
            "pruned": count["PRUNED"],
            "failed": count["FAIL"],
            "running": count["RUNNING"],
            "waiting": count["WAITING"],
            "best_val_acc": best["value"] if best else None,
            "mean_val_acc": statistics.fmean(values) if values else None,
            "std_val_acc": statistics.stdev(values) if len(values) >= 2 else None,
            "best_test_acc": best["test_acc"] if best else None,
            "best_study": best["study"] if best else None,
            "best_trial": best["number"] if best else None,
            **_cost_tables.cost_summary(rows, best),
        })
    return out


def per_neuron_tables(summary: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The original code's layout from summary rows: ``{"<neuron>/BP_results/<surrogate>.csv": rows (one per
    backprop method), "<neuron>/SG_results/<backprop>.csv": rows (one per surrogate)}``."""
    files: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in summary:
        # the names come from the database: each becomes one plain path part (objectives.path_part), so a
        # name like "../x" or "/etc" names a file inside the report folder, never elsewhere
        neuron = path_part(row["neuron"])
        files[f"{neuron}/BP_results/{path_part(row['surrogate'])}.csv"].append(row)
        files[f"{neuron}/SG_results/{path_part(row['backprop'])}.csv"].append(row)
    return {path: sorted(rows, key=lambda r: (r["backprop"], r["surrogate"])) for path, rows in sorted(files.items())}


def _cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return repr(value)
    return value


def write_csv(path: Path, rows: list[dict[str, Any]], columns: Iterable[str]) -> Path:
    """Write ``rows`` with ``columns`` as a header (missing keys empty), atomically (the file is whole or absent);
    returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return write_atomic(path, text.getvalue())


def read_csv(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV this module wrote, numbers as int or float and empty cells as ``None``."""
    with path.open(newline="", encoding="utf-8") as f:
        return [{k: _parse(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _parse(text: str | None) -> Any:
    if text is None or text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
