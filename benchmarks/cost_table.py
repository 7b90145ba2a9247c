"""A study's trials and what their networks cost, as one Markdown table (the figures of a closing note).

One row per trial: combination, state, validation and test accuracy, and the cost metrics of its best
weights on the test set (spikes, synaptic operations as accumulates and multiply-accumulates, the energy
proxy, the decision step); a trial without a test pass (pruned) shows its validation set's at its best
epoch so far, and that epoch's validation accuracy, in brackets. The numbers are those of
``snn-study report``'s ``trials.csv``.

    SNN_STUDY_DATA=../shared/data OMP_NUM_THREADS=1 snn-study run --preset quick --storage sqlite:///q.db
    python benchmarks/cost_table.py --storage sqlite:///q.db --study quick
"""

from __future__ import annotations

import argparse
import sys

from reports import load_study_data, trial_rows


def _si(value: float) -> str:
    for prefix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{prefix}"
    return f"{value:.3g}"


def cell(row: dict, metric: str, show) -> str:
    """The test set's value of ``metric``, else the validation set's in brackets, else a dash."""
    if row.get(metric) is not None:
        return show(row[metric])
    if row.get(f"val_{metric}") is not None:
        return f"({show(row[f'val_{metric}'])})"
    return "–"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--storage", required=True, metavar="URL")
    p.add_argument("--study", required=True, metavar="NAME")
    args = p.parse_args(argv)
    data = load_study_data(args.storage, args.study)
    rows, _ = trial_rows(data)
    print("| trial | combination | state | val. acc. | test acc. | spikes / inference | synaptic ops (ACs + MACs) "
          "| energy proxy (µJ) | decision step |")
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|")
    for r, record in zip(rows, data.records):
        reported = record.intermediate_values.values()
        acc = f"{r['value']:.2%}" if r["value"] is not None else f"({max(reported):.2%})" if reported else "–"
        test = "–" if r["test_acc"] is None else f"{r['test_acc']:.2%}"
        ops = cell(r, "synops", _si)
        if r["synops"] is not None:
            ops += f" ({_si(r['effective_acs'])} + {_si(r['effective_macs'])})"
        print(f"| {r['number']} | {r['neuron']} / {r['surrogate']} / {r['backprop']} | {r['state'].lower()} | {acc} "
              f"| {test} | {cell(r, 'spikes_per_sample', lambda v: f'{v:,.0f}')} | {ops} "
              f"| {cell(r, 'energy_proxy_uj', lambda v: f'{v:.2f}')} | {cell(r, 'decision_step', str)} |")
    print("\nin brackets: the validation set's, at the trial's best epoch so far (no test pass: pruned)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
