"""The original code's ``Plotter``: aggregate results, then plot them.

``aggregate_results`` reads either a study database (a storage URL and a study
name) or the original code's per-neuron CSV folders (``<neuron>/BP_results/<surrogate>.csv``,
``<neuron>/SG_results/<backprop>.csv``, as ``snn-study report --layout per-neuron``
writes them); ``plot_metrics`` writes the figures with an ``index.html``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from objectives import COMBINATION, ConfigError

from . import _figures, _records, _tables
from ._export import DESCRIPTIONS, Report, export, prepare_out, write_report
from ._html import Section

RESULT_FOLDERS = ("BP_results", "SG_results")


def read_result_folder(folder: str | Path) -> list[dict[str, Any]]:
    """Summary rows from a folder of the original code's CSV files: a report folder, a neuron's folder or one results
    folder.

    Every ``*.csv`` under a ``BP_results`` or ``SG_results`` folder counts (and a
    ``summary.csv`` at the top, when there is one); a combination found in several
    files counts once.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError("path", str(folder),
                          "is neither a storage URL (with study=NAME) nor a folder of result CSV files")
    files = sorted(p for p in folder.rglob("*.csv") if p.parent.name in RESULT_FOLDERS or folder.name in RESULT_FOLDERS)
    if (folder / "summary.csv").is_file():
        files.insert(0, folder / "summary.csv")
    if not files:
        raise ConfigError("path", str(folder), "holds no BP_results/ or SG_results/ CSV files nor a summary.csv; "
                                               "write them with: snn-study report --layout per-neuron")
    rows: dict[tuple, dict[str, Any]] = {}
    for path in files:
        for row in _tables.read_csv(path):
            if any(k not in row for k in COMBINATION):
                raise ConfigError("path", str(path),
                                  f"is not a results CSV: it needs the columns {', '.join(COMBINATION)}")
            rows[tuple(str(row[k]) for k in COMBINATION)] = {**row, **{k: str(row[k]) for k in COMBINATION}}
    return [rows[k] for k in sorted(rows)]


class Plotter:
    """Aggregate study results, then plot them (the original code's API).

    >>> p = Plotter()
    >>> p.aggregate_results("sqlite:///runs/snn_study.db", study="mnist-neurons")   # doctest: +SKIP
    >>> p.aggregate_results("report/alpha/BP_results")                              # doctest: +SKIP
    >>> p.plot_metrics(output_dir="plots")                                          # doctest: +SKIP
    """

    def __init__(self) -> None:
        #: one summary row per neuron-surrogate-backprop combination aggregated so far
        self.results: list[dict[str, Any]] = []
        self._sources: list[tuple[str, str | None]] = []

    def aggregate_results(self, path_or_url: str | Path, study: str | None = None) -> list[dict[str, Any]]:
        """Add the results at ``path_or_url`` and return all summary rows so far.

        ``path_or_url`` is a storage URL (``sqlite:///runs/snn_study.db``, ``postgresql://...``)
        with ``study`` naming the study (or the prefix of per-combination studies), or a
        folder of result CSV files (:func:`read_result_folder`). A combination seen again
        replaces the earlier row.
        """
        source = str(path_or_url)
        if "://" in source:
            if not study:
                raise ConfigError("study", study,
                                  "a storage URL needs the study name: aggregate_results(url, study=NAME)")
            from ._load import load_study_data

            data = load_study_data(source, study)
            trials, _ = _tables.trial_rows(data)
            rows = _tables.summary_rows(trials)
        else:
            if study is not None:
                raise ConfigError("study", study, "is only for a storage URL; a folder of CSV files names no study")
            rows = read_result_folder(source)
        merged = {tuple(r[k] for k in COMBINATION): r for r in self.results}
        merged.update({tuple(r[k] for k in COMBINATION): r for r in rows})
        self.results = [merged[k] for k in sorted(merged)]
        self._sources.append((source, study))
        return self.results

    def plot_metrics(self, output_dir: str | Path = "plots") -> Report:
        """Write the figures and ``index.html`` into ``output_dir``.

        From one study database alone: the full report, as ``snn-study report
        --no-dashboard`` writes it (tables, every figure). Otherwise (CSV folders, or
        several sources): the summary table, the neuron × surrogate heatmaps and the
        best accuracy by factor.
        """
        if not self._sources:
            raise ConfigError("Plotter", "no results", "call aggregate_results(path_or_url) first")
        url, study = self._sources[0]
        if len(self._sources) == 1 and study is not None:  # one study database (a folder of CSVs names no study)
            return export(url, study, output_dir, dashboard=False)
        out = Path(output_dir)
        prepare_out(out)
        report = Report(out=out, summary=self.results)
        sections = [
            Section("heatmap", *DESCRIPTIONS["heatmap"],
                    _figures.heatmap_figure(_records.heatmap_records(self.results))),
            Section("best_by_factor", *DESCRIPTIONS["best_by_factor"],
                    _figures.best_by_factor_figure(_records.best_by_factor(self.results))),
        ]
        meta = ["from " + ", ".join(s for s, _ in self._sources),
                f"{len(self.results)} neuron × surrogate × backprop combinations",
                f"generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"]
        best = max((r for r in self.results if r.get("best_val_acc") is not None), key=lambda r: r["best_val_acc"],
                   default=None)
        winner = None if best is None else (f"Best: {_records.combination_label(best)}, validation accuracy "
                                             f"{best['best_val_acc']:.2%}")
        tables = {"summary.csv": (self.results, list(_tables.SUMMARY_COLUMNS))}
        write_report(out, "SNN results", meta, winner, self.results, sections, ("html",), tables, report)
        return report
