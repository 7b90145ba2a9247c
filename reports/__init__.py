"""Reports of a study, from the database alone: CSV tables, Plotly figures, ``index.html``, the original code's
``Plotter``.

``export(url, study, out)`` is what ``snn-study report`` runs. The tables and the
figure data are plain rows and records (``trial_rows``, ``summary_rows``,
``curve_records``, ...), built before anything is drawn, so they can be checked
and reused without parsing HTML.
"""

from ._comparison import comparison_of, comparison_rows, is_comparison, ranking_lines, replicate_records
from ._cost_tables import pareto_front
from ._dashboard import DASHBOARD_FIGURES
from ._export import FORMATS, LAYOUTS, Report, export, parse_formats, png_problem, print_report
from ._load import StudyData, load_study_data
from ._optuna import MIN_IMPORTANCE_TRIALS, importance_records, merged_study
from ._plotter import Plotter, read_result_folder
from ._records import (
    best_by_factor,
    curve_records,
    distribution_records,
    heatmap_records,
    history_records,
    level_counts,
    spike_rate_records,
)
from ._stats import cell_stats, comparison_json, comparison_tables, factor_stats, format_comparison, holm, main_effects
from ._tables import SUMMARY_COLUMNS, best_trial, epoch_rows, per_neuron_tables, read_csv, summary_rows, trial_rows
from ._traces import TraceRecord, trace_records

__all__ = [
    "DASHBOARD_FIGURES",
    "FORMATS",
    "LAYOUTS",
    "MIN_IMPORTANCE_TRIALS",
    "Plotter",
    "Report",
    "SUMMARY_COLUMNS",
    "StudyData",
    "TraceRecord",
    "best_by_factor",
    "best_trial",
    "cell_stats",
    "comparison_json",
    "comparison_of",
    "comparison_rows",
    "comparison_tables",
    "curve_records",
    "distribution_records",
    "epoch_rows",
    "export",
    "factor_stats",
    "format_comparison",
    "heatmap_records",
    "history_records",
    "holm",
    "importance_records",
    "is_comparison",
    "level_counts",
    "load_study_data",
    "main_effects",
    "merged_study",
    "pareto_front",
    "parse_formats",
    "per_neuron_tables",
    "png_problem",
    "print_report",
    "ranking_lines",
    "read_csv",
    "read_result_folder",
    "replicate_records",
    "spike_rate_records",
    "summary_rows",
    "trace_records",
    "trial_rows",
]
