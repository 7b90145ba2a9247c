"""``snn-study compare``: the comparison protocol end to end, and its result read back from the storage.

The two stages (:mod:`study._stages`) run one after the other through the runner
(:func:`study._runner.run`: the same workers, heartbeats, queue and resumption as ``snn-study
run``); the replicate stage starts once every cell's tuning is done, because it re-trains each
cell's best tuning trial. Running the same command again resumes whichever stage stopped. The
result is computed from the database alone (:func:`reports.comparison_of`), so a comparison
that is still running, or one run on other machines, reads the same way.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from objectives import ConfigError, parse_study_name
from reports import comparison_of, load_study_data, ranking_lines
from storage import open_storage

from ._config import StudyConfig
from ._runner import run
from ._stages import DEFAULT_SEEDS, CompareSettings, check_replicates, stage_config, total_trials

STAGE_ORDER = ("tune", "replicate")


def compare(cfg: StudyConfig, quiet: bool = False, debug: bool = False, fit: Callable | None = None) -> int:
    """Run comparison ``cfg``: stage tune, then stage replicate, each resumed where it stopped. Returns an exit code.

    ``fit`` replaces each trial's training in this process (one worker): the seam for tests (see
    :class:`objectives.Objective`).
    """
    storage = open_storage(cfg.study.storage, heartbeat_interval=None)
    warning = few_seeds_warning(cfg.compare) if cfg.compare is not None else None
    if warning is not None:
        print(f"snn-study compare: warning: {warning}", file=sys.stderr, flush=True)
    totals = total_trials(cfg)
    for stage in STAGE_ORDER:
        stage_cfg = stage_config(cfg, stage, storage)
        if stage == "replicate":
            check_replicates(stage_cfg, storage)
        what = (f"{cfg.compare.trials_per_cell} trials per cell, sampler {cfg.study.sampler}, pruner "
                f"{cfg.study.pruner.name} within each cell" if stage == "tune" and cfg.compare is not None
                else f"seeds {', '.join(map(str, cfg.compare.seeds if cfg.compare else ()))}, no pruning")
        print(f"compare {cfg.study.name!r}, stage {stage}: {len(stage_cfg.studies())} cells, {totals[stage]} trials "
              f"({what})", file=sys.stderr, flush=True)
        code = run(stage_cfg, quiet=quiet, debug=debug, fit=fit)
        if code != 0:
            return code
    return 0


def few_seeds_warning(settings: CompareSettings) -> str | None:
    """Why a replicate stage of fewer than 3 seeds can hardly rank anything, with what :data:`DEFAULT_SEEDS`
    would give; ``None`` from 3 seeds on. A Student t interval over n seeds is ``t(n - 1) / sqrt(n)`` standard
    deviations wide each side: from 2 seeds, 12.7 / 1.41 at 95 %, against 2.8 / 2.24 from 5."""
    from scipy import stats

    n = len(settings.seeds)
    if n >= 3:
        return None

    def half_width(seeds: int) -> float:
        return float(stats.t.ppf(1 - settings.alpha / 2, seeds - 1)) / seeds ** 0.5

    return (f"stage replicate runs {n} seeds per combination (compare.seeds): its {(1 - settings.alpha) * 100:g} % "
            f"intervals are {half_width(n) / half_width(DEFAULT_SEEDS):.1f} times as wide as from {DEFAULT_SEEDS} "
            f"seeds (the same spread), too wide to tell most combinations apart; --set compare.seeds={DEFAULT_SEEDS} "
            "runs more")


def comparison_result(url: str, name: str) -> dict[str, Any]:
    """The result of comparison ``name`` in the storage at ``url`` (``reports.comparison_of``); a ``--study``
    ConfigError when ``name`` is a study but not a comparison."""
    comparison = comparison_of(load_study_data(url, name))
    if comparison is None:
        raise ConfigError("--study", name, "is not a comparison (no tune or replicate stage); run one with "
                                           "snn-study compare, or see this study with snn-study report")
    return comparison


def comparison_names(study_names: list[str]) -> list[str]:
    """The comparisons among a storage's study names: the parents of stage studies, sorted."""
    return sorted({cell.parent for n in study_names if (cell := parse_study_name(n)) is not None and cell.stage})


def comparison_lines(url: str, study_names: list[str]) -> list[str]:
    """``snn-study list``'s lines for each comparison in the storage: its stages, best combination and ties."""
    lines = []
    for name in comparison_names(study_names):
        lines += ranking_lines(comparison_result(url, name))
    return lines


__all__ = ["STAGE_ORDER", "compare", "comparison_lines", "comparison_names", "comparison_result"]
