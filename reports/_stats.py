"""Statistics of a comparison over seed replicates: cell intervals, paired tests per factor, Holm, main effects.

Pure functions over plain records ``{"neuron", "surrogate", "backprop", "seed", "test_acc"}`` (the factor
names are a parameter); nothing here reads a database. Every number in the output is defined below.

Cells (one combination of the factors)
    n seeds, the per-seed values sorted by seed, mean, sample std (n - 1) and the ``1 - alpha`` (95 %)
    **Student t interval of the mean**: mean +- t(1 - alpha/2, n - 1) * s / sqrt(n) (``scipy.stats.t.interval``).
    It assumes roughly normal seed noise, which an accuracy averaged over thousands of test images has; a
    bootstrap interval would need far more than the 3 to 5 seeds a comparison trains. One seed: no interval.

Factors: each level against the best level, paired
    The best level has the highest level mean (defined below). A *block* is one combination of the other factors
    together with one seed (a seed fixes initialization, batch order and encoding draws in every cell, so cells
    may share its luck); a level is compared with another on the blocks where both have a value.

    *Test: the paired t-test* (``scipy.stats.ttest_rel``) on the per-block differences, two-sided.
    Not the Wilcoxon signed-rank test, because of the number of pairs the protocol has: the ``compare-quick``
    design (4 neurons x 2 surrogates x 1 method, 3 seeds) gives each neuron pair 2 x 3 = 6 blocks, where the
    smallest p the exact Wilcoxon test can reach is 2 / 2**6 = 0.031, above every Holm threshold of a
    six-hypothesis family (0.05 / 6 = 0.008): it could never find any neuron worse than another. The t-test
    reaches small p with few pairs, and its normality assumption concerns the mean of the differences, whose
    components are themselves means over thousands of test images; ties (equal accuracies), which break the
    exact Wilcoxon distribution, do not matter to it. A diverged seed (chance accuracy) inflates the
    variance of the differences and costs power rather than creating false claims.

    *Correction: Holm over all pairs of levels of the factor* (k (k - 1) / 2 hypotheses), not only over the
    k - 1 comparisons with the best. The best level is chosen on the same data: under no effect the observed
    best is the luckiest level, and testing the others against it with a k - 1 family is a range test in
    disguise whose family-wise error grows with k (simulated: about 7 % for 4 equal levels, 10 to 13 % for 8,
    at a nominal 5 %).
    The comparisons with the best are a subset of all pairs, so Holm over all pairs bounds the probability of
    calling any equally good level worse by alpha, whichever level comes out best. Every pair's corrected p
    is in the output too.

    *Effect size*: the mean paired difference best - level in the unit of the values (fraction correct;
    x100 for points), its ``1 - alpha`` t interval, and Cohen's d_z = mean / sd of the paired differences.

    *Tied with the best*: a level is ``tied_with_best`` unless its Holm-corrected p is below alpha and the best
    level is ahead of it on the matched blocks; the best is tied with itself. Levels get a ``group``:
    ``best``, ``tied`` (not shown worse than the best) or ``worse`` (significantly below the best). Levels of
    one group are never ranked apart: the tables order them by mean for reading only. Fewer than two matched
    blocks, or differences that are all equal (no variance, no t statistic): no p, so tied, with a note.

    *Power* (tests/test_stats.py, noise sd 1 point per replicate): with ``compare-quick``'s 3 seeds a neuron
    3 points ahead of the other three is found in about 95 % of simulated comparisons, 2 points ahead in 70 %,
    1 point ahead in 20 %; the full 4 x 8 x 3 design with 5 seeds finds a 1-point neuron gap in every one and a
    half-point gap in about 95 %. A tie means "not shown different at this budget", not "equal".

    *Omnibus*: the Friedman test (``scipy.stats.friedmanchisquare``) over the levels, on the blocks that have
    every level, where a factor has at least three levels; its chi-square p is approximate with fewer than 10
    blocks, and it is reported beside the pairwise results, not used to gate them (Holm alone controls the
    family-wise error).

    *Level mean and interval*: each seed's mean over the level's values (the other factors averaged out), then
    the mean and t interval of these per-seed means: the interval reflects seed noise with the other factors
    held at the design's levels. On a balanced design the mean is the plain mean of the level's values.

Importance: main effects
    The share of the total sum of squares of the replicate values explained by each factor (eta squared),
    from a least-squares main-effects model: a factor's sum of squares is the rise in the residual sum of
    squares when the factor is left out (type II). On a balanced design (every combination present with the
    same number of seeds) this is the classical between-levels sum of squares, and the factor shares, the
    ``interactions`` share (cell means not explained by the main effects) and the ``seeds`` share (spread
    within cells) add up to 1. On an unbalanced design the factor shares are each factor's unique share
    after the others, need not add up with the rest to 1, and ``balanced`` is false.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

from objectives import COMBINATION

INTERVAL = "Student t interval of the mean over seeds (n - 1 degrees of freedom)"
PAIRED_TEST = "paired t-test (scipy.stats.ttest_rel), two-sided, over blocks of matched other factors and seed"
CORRECTION = "Holm over all pairs of levels within a factor"
EFFECT_SIZE = "mean paired difference best - level (value units) with its t interval, and Cohen's d_z"
OMNIBUS = "Friedman chi-square over levels, blocks = matched other factors and seed (factors with >= 3 levels)"
IMPORTANCE = "eta squared of each factor's main effect (type II sums of squares) over the replicate values"

#: with fewer complete blocks than this the Friedman chi-square p is an approximation worth a note
FRIEDMAN_MIN_BLOCKS = 10

Record = Mapping[str, Any]


def _value(record: Record, value: str) -> float | None:
    """The record's finite value, or None for a missing, failed or non-finite one."""
    v = record.get(value)
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _replicates(records: Iterable[Record], factors: Sequence[str], value: str
                ) -> dict[tuple[Any, ...], dict[Any, float | None]]:
    """``{cell: {seed: value or None}}``; a record without a factor or seed, or a repeated (cell, seed), is an error."""
    cells: dict[tuple[Any, ...], dict[Any, float | None]] = defaultdict(dict)
    for r in records:
        missing = [k for k in (*factors, "seed") if k not in r]
        if missing:
            raise ValueError(f"replicate record {dict(r)!r} lacks {', '.join(missing)}; each needs "
                             f"{', '.join((*factors, 'seed', value))}")
        cell = tuple(r[f] for f in factors)
        if r["seed"] in cells[cell]:
            raise ValueError(f"two replicates of {dict(zip(factors, cell, strict=True))} with seed {r['seed']!r}")
        cells[cell][r["seed"]] = _value(r, value)
    return cells


def _sorted_seeds(seeds: Iterable[Any]) -> list[Any]:
    return sorted(seeds, key=lambda s: (str(type(s)), s))


def _mean_interval(values: Sequence[float], confidence: float) -> dict[str, Any]:
    """n, mean, sample std and the t interval of the mean; None where undefined, with the reason in ``note``."""
    n = len(values)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "ci_low": None, "ci_high": None, "note": "no value"}
    mean = float(np.mean(values))
    if n == 1:
        return {"n": 1, "mean": mean, "std": None, "ci_low": None, "ci_high": None,
                "note": "one seed: no spread, no interval"}
    std = float(np.std(values, ddof=1))
    if std == 0.0:
        return {"n": n, "mean": mean, "std": 0.0, "ci_low": mean, "ci_high": mean,
                "note": "every seed gave the same value: the interval is a point"}
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=std / math.sqrt(n))
    return {"n": n, "mean": mean, "std": std, "ci_low": float(low), "ci_high": float(high), "note": None}


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values, in the input order; None (an untestable hypothesis) stays None.

    Sorted ascending, the i-th of the m p-values (i from 0) becomes ``max over j <= i of min(1, (m - j) p_(j))``;
    a hypothesis is rejected at level alpha when its adjusted p is below alpha.
    """
    tested = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    m = len(tested)
    adjusted: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def cell_stats(records: Iterable[Record], factors: Sequence[str] = COMBINATION, *, value: str = "test_acc",
               alpha: float = 0.05) -> list[dict[str, Any]]:
    """One row per combination, best mean first: factors, seeds and values (by seed), n, mean, std, t interval.

    ``missing_seeds`` lists replicates whose value is absent or not finite (a failed run); they are left out.
    """
    rows = []
    for cell, by_seed in _replicates(records, factors, value).items():
        present = {s: v for s, v in by_seed.items() if v is not None}
        seeds = _sorted_seeds(present)
        values = [present[s] for s in seeds]
        summary = _mean_interval(values, 1 - alpha)
        rows.append({**dict(zip(factors, cell, strict=True)), "seeds": seeds, "values": values, **summary,
                     "missing_seeds": _sorted_seeds(s for s, v in by_seed.items() if v is None)})
    return sorted(rows, key=lambda r: (r["mean"] is None, -(r["mean"] or 0.0), [str(r[f]) for f in factors]))


def _paired(a: Sequence[float], b: Sequence[float], confidence: float) -> dict[str, Any]:
    """The paired t-test of a - b: n, mean difference, its interval, d_z, t and p; None where undefined."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = len(d)
    out: dict[str, Any] = {"n_pairs": n, "diff": float(d.mean()) if n else None, "diff_ci_low": None,
                           "diff_ci_high": None, "d_z": None, "t": None, "p_value": None, "note": None}
    if n < 2:
        out["note"] = f"{n} matched block{'s' if n != 1 else ''}: no test"
        return out
    # differences equal up to rounding (e.g. 0.91 - 0.90 and 0.81 - 0.80) leave no variance to test against
    if np.ptp(d) <= 1e-12 * max(1.0, float(np.abs(d).max())):
        if abs(out["diff"]) <= 1e-12:
            out.update(diff=0.0, diff_ci_low=0.0, diff_ci_high=0.0, t=0.0, p_value=1.0,
                       note="every matched block gave the same value")
        else:
            out["note"] = "every matched difference is the same: no variance, no t statistic"
        return out
    result = stats.ttest_rel(a, b)
    ci = result.confidence_interval(confidence)
    out.update(diff_ci_low=float(ci.low), diff_ci_high=float(ci.high), d_z=float(d.mean() / d.std(ddof=1)),
               t=float(result.statistic), p_value=float(result.pvalue))
    return out


def _friedman(columns: dict[Any, dict[tuple[Any, ...], float]]) -> dict[str, Any]:
    """Friedman's test over the levels on the blocks every level has; None with a reason where it does not fit."""
    k = len(columns)
    result: dict[str, Any] = {"test": "friedman", "k": k, "n_blocks": 0, "statistic": None, "df": k - 1,
                              "p_value": None, "note": None}
    if k < 3:
        result["note"] = "fewer than 3 levels: the paired test with the best is the whole comparison"
        return result
    complete = set.intersection(*(set(c) for c in columns.values()))
    blocks = sorted(complete, key=repr)
    result["n_blocks"] = len(blocks)
    if len(blocks) < 2:
        result["note"] = f"{len(blocks)} block{'s' if len(blocks) != 1 else ''} with every level: no test"
        return result
    samples = [[c[b] for b in blocks] for c in columns.values()]
    if all(len(set(col)) == 1 for col in zip(*samples, strict=True)):
        result.update(statistic=0.0, p_value=1.0, note="every level gave the same value in every block")
        return result
    fr = stats.friedmanchisquare(*samples)
    result.update(statistic=float(fr.statistic), p_value=float(fr.pvalue))
    if len(blocks) < FRIEDMAN_MIN_BLOCKS:
        result["note"] = f"chi-square approximation on {len(blocks)} blocks: the p-value is approximate"
    return result


def factor_stats(records: Iterable[Record], factors: Sequence[str] = COMBINATION, *, value: str = "test_acc",
                 alpha: float = 0.05) -> list[dict[str, Any]]:
    """Per factor: ``{factor, best, levels, pairs, omnibus, n_comparisons}`` (definitions in the module docstring).

    ``levels``: one row per level, best mean first: level, n, mean, n_seeds, ci_low, ci_high, then the paired
    comparison with the best (n_pairs, diff, diff_ci_low, diff_ci_high, d_z, t, p_value, p_holm),
    tied_with_best, group and note. ``pairs``: every pair of levels with its test and Holm-corrected p.
    A level without any value (every replicate failed) is not listed; :func:`cell_stats` shows its cells.
    """
    cells = _replicates(records, factors, value)
    out: list[dict[str, Any]] = []
    for fi, factor in enumerate(factors):
        # level -> {(other factors..., seed): value}
        blocks: dict[Any, dict[tuple[Any, ...], float]] = defaultdict(dict)
        per_seed: dict[Any, dict[Any, list[float]]] = defaultdict(lambda: defaultdict(list))
        for cell, by_seed in cells.items():
            others = cell[:fi] + cell[fi + 1:]
            for seed, v in by_seed.items():
                if v is not None:
                    blocks[cell[fi]][others + (seed,)] = v
                    per_seed[cell[fi]][seed].append(v)
        seed_means = {lv: [float(np.mean(per_seed[lv][s])) for s in _sorted_seeds(per_seed[lv])] for lv in blocks}
        levels = sorted(blocks, key=lambda lv: (-float(np.mean(seed_means[lv])), str(lv)))
        if not levels:
            out.append({"factor": factor, "best": None, "levels": [], "pairs": [], "omnibus": _friedman({}),
                        "n_comparisons": 0})
            continue
        best = levels[0]
        pairs = []
        for a, b in itertools.combinations(levels, 2):
            shared = sorted(set(blocks[a]) & set(blocks[b]), key=repr)
            test = _paired([blocks[a][s] for s in shared], [blocks[b][s] for s in shared], 1 - alpha)
            pairs.append({"a": a, "b": b, **test})
        for pair, p in zip(pairs, holm([p["p_value"] for p in pairs]), strict=True):
            pair["p_holm"] = p
        with_best = {p["b"]: p for p in pairs if p["a"] == best}
        rows = []
        for level in levels:
            interval = _mean_interval(seed_means[level], 1 - alpha)
            row = {"factor": factor, "level": level, "n": len(blocks[level]), "mean": interval["mean"],
                   "n_seeds": interval["n"], "ci_low": interval["ci_low"], "ci_high": interval["ci_high"]}
            if level == best:
                row.update(n_pairs=None, diff=0.0, diff_ci_low=None, diff_ci_high=None, d_z=None, t=None,
                           p_value=None, p_holm=None, tied_with_best=True, group="best", note=None)
            else:
                pair = with_best[level]
                worse = pair["p_holm"] is not None and pair["p_holm"] < alpha and pair["diff"] > 0
                row.update({k: pair[k] for k in ("n_pairs", "diff", "diff_ci_low", "diff_ci_high", "d_z", "t",
                                                 "p_value", "p_holm", "note")},
                           tied_with_best=not worse, group="worse" if worse else "tied")
            rows.append(row)
        out.append({"factor": factor, "best": best, "levels": rows, "pairs": pairs,
                    "omnibus": _friedman({lv: blocks[lv] for lv in levels}),
                    "n_comparisons": sum(p["p_value"] is not None for p in pairs)})
    return out


def _rss(y: np.ndarray, columns: list[np.ndarray]) -> float:
    """Residual sum of squares of the least-squares fit of y on an intercept and the given columns."""
    x = np.column_stack([np.ones_like(y), *columns])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    return float(np.sum((y - x @ coef) ** 2))


def main_effects(records: Iterable[Record], factors: Sequence[str] = COMBINATION, *,
                 value: str = "test_acc") -> list[dict[str, Any]]:
    """The share of variance of the replicate values per factor, then ``interactions`` and ``seeds``.

    Rows ``{source, share, ss, df, levels, n, balanced}``: ``share`` is eta squared (the source's sum of squares
    over the total), n the number of replicate values. Shares are None when every value is the same.
    """
    cells = {cell: [v for v in by_seed.values() if v is not None]
             for cell, by_seed in _replicates(records, factors, value).items()}
    cells = {cell: values for cell, values in cells.items() if values}
    cell_of = [cell for cell, values in cells.items() for _ in values]
    y = np.array([v for values in cells.values() for v in values], dtype=float)
    n = len(y)
    if n == 0:
        return [{"source": s, "share": None, "ss": None, "df": None, "levels": None, "n": 0, "balanced": False}
                for s in (*factors, "interactions", "seeds")]
    level_sets = [sorted({cell[i] for cell in cells}, key=str) for i in range(len(factors))]
    balanced = (len(cells) == math.prod(len(s) for s in level_sets)
                and len({len(values) for values in cells.values()}) == 1)
    dummies = [[np.array([cell[i] == lv for cell in cell_of], dtype=float) for lv in levels[1:]]
               for i, levels in enumerate(level_sets)]
    total = float(np.sum((y - y.mean()) ** 2))
    rss_main = _rss(y, [c for cols in dummies for c in cols])
    within = float(sum(np.sum((np.array(values) - np.mean(values)) ** 2) for values in cells.values()))
    rows: list[dict[str, Any]] = []
    for i, factor in enumerate(factors):
        rest = [c for j, cols in enumerate(dummies) if j != i for c in cols]
        ss = max(0.0, _rss(y, rest) - rss_main)
        rows.append({"source": factor, "ss": ss, "df": len(level_sets[i]) - 1, "levels": len(level_sets[i])})
    main_df = sum(r["df"] for r in rows)
    rows.append({"source": "interactions", "ss": max(0.0, rss_main - within), "df": len(cells) - 1 - main_df,
                 "levels": None})
    rows.append({"source": "seeds", "ss": within, "df": n - len(cells), "levels": None})
    for r in rows:
        r.update(share=r["ss"] / total if total > 0 else None, n=n, balanced=balanced)
    return [{k: r[k] for k in ("source", "share", "ss", "df", "levels", "n", "balanced")} for r in rows]


def comparison_tables(records: Iterable[Record], alpha: float = 0.05, factors: Sequence[str] = COMBINATION, *,
                      value: str = "test_acc") -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                                        list[dict[str, Any]]]:
    """``(cell_rows, factor_rows, importance_rows)``: plain rows for ``comparison.csv`` and the report.

    ``cell_rows`` as :func:`cell_stats`; ``factor_rows`` one per (factor, level), the levels of
    :func:`factor_stats` with the factor's best level and its Friedman result (``omnibus_statistic``,
    ``omnibus_df``, ``omnibus_p``, ``omnibus_blocks``) repeated on each of its rows; ``importance_rows`` as
    :func:`main_effects`.
    """
    records = list(records)
    factor_rows = []
    for f in factor_stats(records, factors, value=value, alpha=alpha):
        om = f["omnibus"]
        for row in f["levels"]:
            factor_rows.append({**row, "best": f["best"], "n_comparisons": f["n_comparisons"],
                                "omnibus_statistic": om["statistic"], "omnibus_df": om["df"] if om["k"] >= 3
                                else None, "omnibus_p": om["p_value"], "omnibus_blocks": om["n_blocks"]})
    return (cell_stats(records, factors, value=value, alpha=alpha), factor_rows,
            main_effects(records, factors, value=value))


def _json_safe(x: Any) -> Any:
    """Lists, dicts of str keys, str, int, bool, None and finite floats only: NaN and infinities become None."""
    if isinstance(x, Mapping):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x


def comparison_json(records: Iterable[Record], alpha: float = 0.05, factors: Sequence[str] = COMBINATION, *,
                    value: str = "test_acc") -> dict[str, Any]:
    """The whole comparison as one JSON-safe dict (``comparison.json``): methods, cells, factors, importance.

    ``{"value", "alpha", "confidence", "factors", "methods": {...}, "cells": [...], "factor_tests": [...],
    "importance": [...]}`` with the rows of :func:`cell_stats`, :func:`factor_stats` (each factor with its
    levels, every pair and the Friedman omnibus) and :func:`main_effects`; no NaN or infinity anywhere.
    """
    records = list(records)
    return _json_safe({
        "value": value,
        "alpha": alpha,
        "confidence": 1 - alpha,
        "factors": list(factors),
        "methods": {"interval": INTERVAL, "paired_test": PAIRED_TEST, "correction": CORRECTION,
                    "effect_size": EFFECT_SIZE, "omnibus": OMNIBUS, "importance": IMPORTANCE,
                    "tied_with_best": f"Holm-corrected p >= {alpha}, or no test possible, or not behind the best"},
        "cells": cell_stats(records, factors, value=value, alpha=alpha),
        "factor_tests": factor_stats(records, factors, value=value, alpha=alpha),
        "importance": main_effects(records, factors, value=value),
    })


def _num(x: float | None, scale: float, digits: int) -> str:
    return "-" if x is None else f"{x * scale:.{digits}f}"


def _p(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.2g}" if x < 0.001 else f"{x:.3f}"


def format_comparison(comparison: Mapping[str, Any], *, percent: bool = True) -> str:
    """The ranking tables of a :func:`comparison_json` dict as plain text for the terminal.

    Values are shown x100 (accuracy in percent) unless ``percent`` is false. Levels tied with the best are
    marked ``tied``; levels of one group are listed by mean but not ranked apart.
    """
    # percent: 2 decimals (a hundredth of a point, a single image of 10,000); a fraction: 2 more
    scale, digits, unit = (100.0, 2, " (%)") if percent else (1.0, 4, "")

    def num(x: float | None, extra: int = 0) -> str:
        return _num(x, scale, digits + extra)

    def interval(row: Mapping[str, Any]) -> str:
        return "-" if row["ci_low"] is None else f"[{num(row['ci_low'])}, {num(row['ci_high'])}]"

    conf = f"{comparison['confidence'] * 100:g}%"
    factors = comparison["factors"]
    lines = [f"Combinations: {comparison['value']}{unit}, mean and {conf} t interval over seeds, best first"]
    width = max([len(" / ".join(str(c[f]) for f in factors)) for c in comparison["cells"]] + [11])
    lines.append(f"  {'combination':<{width}}  {'n':>2}  {'mean':>7}  {conf + ' CI':<18}  per seed")
    for c in comparison["cells"]:
        label = " / ".join(str(c[f]) for f in factors)
        seeds = " ".join(num(v, -1) for v in c["values"])
        missing = f"  (failed seeds: {', '.join(map(str, c['missing_seeds']))})" if c["missing_seeds"] else ""
        lines.append(f"  {label:<{width}}  {c['n']:>2}  {num(c['mean']):>7}  {interval(c):<18}  {seeds}{missing}")
    for f in comparison["factor_tests"]:
        if len(f["levels"]) < 2:
            lines += ["", f"{f['factor']}: {'one level (' + str(f['best']) + ')' if f['levels'] else 'no values'}, "
                          "nothing to compare"]
            continue
        om = f["omnibus"]
        omnibus = (f"Friedman chi2({om['df']}) = {om['statistic']:.2f}, p = {_p(om['p_value'])} on {om['n_blocks']} "
                   "blocks" if om["p_value"] is not None else f"no omnibus ({om['note']})")
        lines += ["", f"{f['factor']}: each level against the best ({f['best']}), paired t, Holm over "
                      f"{f['n_comparisons']} pair{'s' if f['n_comparisons'] != 1 else ''}; {omnibus}"]
        width = max([len(str(r["level"])) for r in f["levels"]] + [5])
        lines.append(f"  {'level':<{width}}  {'group':<5}  {'mean':>7}  {conf + ' CI':<18}  {'behind':>7}  "
                     f"{'d_z':>5}  {'pairs':>5}  {'p':>7}  {'p_holm':>7}")
        for r in f["levels"]:
            dz = "-" if r["d_z"] is None else f"{r['d_z']:.2f}"
            note = f"  {r['note']}" if r["note"] else ""
            lines.append(f"  {r['level']!s:<{width}}  {r['group']:<5}  {num(r['mean']):>7}  {interval(r):<18}  "
                         f"{num(r['diff']):>7}  {dz:>5}  {r['n_pairs'] or '-':>5}  {_p(r['p_value']):>7}  "
                         f"{_p(r['p_holm']):>7}{note}")
    importance = comparison["importance"]
    if importance:
        n = importance[0]["n"]
        shares = ", ".join(f"{r['source']} {'-' if r['share'] is None else format(r['share'], '.2f')}"
                           for r in importance)
        balance = "balanced" if importance[0]["balanced"] else "unbalanced: type II shares"
        lines += ["", f"Importance (share of variance, eta squared, n = {n} replicates, {balance}): {shares}"]
    return "\n".join(lines)
