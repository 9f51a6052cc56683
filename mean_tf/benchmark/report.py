"""Render `docs/results.md` and `docs/figures/*.png` from the benchmark's results file (JSON lines).

Every number in the report comes from the results file; nothing is typed in by hand.
"""
from __future__ import annotations


import dataclasses
import json
import os
from collections import Counter, defaultdict
from typing import Dict, List, Sequence, Tuple

import numpy as np

from mean_tf.evaluation import metrics, plots
from mean_tf.evaluation.tables import markdown_table
from mean_tf.runtime.files import write_text
from mean_tf.benchmark import noise
from mean_tf.benchmark.plan import (ABLATION_MODELS, CHOICES, DELTAS, NEURAL_MODELS, NEURAL_VARIANTS, NOISE_MODELS,
                                    NUM_DISTRIBUTIONS, PROTOCOLS, TABLE1_MODELS, TUNED_MODELS, VARIANTS)
from mean_tf.benchmark.plan import blocked as plan_blocked
from mean_tf.benchmark.plan import cells as plan_cells
from mean_tf.contract import LABELS

SHOWN = ("percentile_mape", "normalized_gini", "spearman", "payer_auc", "decile_mape", "top_auc", "lift_at_10")
TITLES = {"percentile_mape": "Percentile MAPE ↓", "normalized_gini": "Gini ↑", "spearman": "Spearman ↑",
          "payer_auc": "AUC ↑", "decile_mape": "Decile MAPE ↓", "top_auc": "Top-10% AUC ↑", "lift_at_10": "Lift@10% ↑"}
TARGET_LABEL = "cltv_365"
PAPER_METRICS = ("percentile_mape", "normalized_gini", "spearman", "payer_auc")
SIGNIFICANCE = 0.05


def read_results(path: str) -> List[dict]:
    """Finished cells; a cell run twice keeps its last line."""
    rows = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                rows[row["key"]] = row
    return list(rows.values())


def _stats(values: Sequence[float]):
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if v.size == 0:
        return float("nan"), float("nan"), 0
    return float(v.mean()), float(v.std(ddof=0)), int(v.size)


def _fmt(mean, std, n, bold=False):
    if not np.isfinite(mean):
        return "n/a"
    number = "{:.3g}" if abs(mean) >= 1e4 else "{:.4f}"
    text = f"{number.format(mean)} ± {number.format(std)}" if n > 1 else number.format(mean)
    return f"**{text}**" if bold else text


def collect(rows, study: str, dataset: str, variant: str | None = None, overrides: dict | None = None):
    """{model: {label: {metric: [values over seeds]}}} for the matching ok cells."""
    out = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for r in rows:
        if r["status"] != "ok" or r["study"] != study or r["dataset"] != dataset:
            continue
        if variant is not None and r.get("variant", "") != variant:
            continue
        if overrides is not None and r.get("overrides", {}) != overrides:
            continue
        for label, values in r["metrics"].items():
            for name, value in values.items():
                out[r["model"]][label][name].append(value)
    return out


def per_seed(rows, study: str, dataset: str, model: str, label: str, metric: str, key: str = "metrics") -> Dict[int, float]:
    """{seed: value} of one model's metric in one study (`key`: "metrics" = test split, "eval_metrics" = eval)."""
    out = {}
    for r in rows:
        if (r["status"] == "ok" and r["study"] == study and r["dataset"] == dataset and r["model"] == model
                and metric in r.get(key, {}).get(label, {})):  # cells older than a metric lack it
            out[r["seed"]] = r[key][label][metric]
    return out


def paired_p(a: Dict[int, float], b: Dict[int, float]) -> float:
    """Two-sided p of a paired t-test of a vs b over their shared seeds (NaN with fewer than 2 or no spread)."""
    from scipy import stats

    seeds = sorted(set(a) & set(b))
    x = np.array([a[s] for s in seeds], dtype=float)
    y = np.array([b[s] for s in seeds], dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size < 2 or np.all(x == y):
        return float("nan")
    if np.std(x - y) == 0:  # the same nonzero difference at every seed
        return 0.0
    return float(stats.ttest_rel(x, y).pvalue)


def best_models(rows, study: str, dataset: str, models: Sequence[str], label: str, metric: str) -> set:
    """The best model of a column, only when its lead over the runner-up is significant (paired t-test over
    seeds, p < SIGNIFICANCE)."""
    scored = []
    for model in models:
        values = per_seed(rows, study, dataset, model, label, metric)
        mean, _, n = _stats(list(values.values()))
        if np.isfinite(mean):
            scored.append((mean if metrics.HIGHER_IS_BETTER[metric] else -mean, model, values))
    if len(scored) < 2:
        return set()
    scored.sort(key=lambda t: t[0], reverse=True)
    p = paired_p(scored[0][2], scored[1][2])
    return {scored[0][1]} if np.isfinite(p) and p < SIGNIFICANCE else set()


def summary_rows(rows, dataset: str, models: Sequence[str], label: str = TARGET_LABEL,
                 study: str = "table1") -> List[list]:
    """[Method, seeds, the paper's four metrics] per model with results: mean ± std over seeds, rank in
    brackets, bold where the best model's lead is significant."""
    ranks, bests = {}, {}
    for metric in PAPER_METRICS:
        means = {m: _stats(list(per_seed(rows, study, dataset, m, label, metric).values()))[0] for m in models}
        order = sorted((m for m in models if np.isfinite(means[m])),
                       key=lambda m: -means[m] if metrics.HIGHER_IS_BETTER[metric] else means[m])
        ranks[metric] = {m: i + 1 for i, m in enumerate(order)}
        bests[metric] = best_models(rows, study, dataset, models, label, metric)
    lines = []
    for model in models:
        cells, seeds = [], 0
        for metric in PAPER_METRICS:
            values = per_seed(rows, study, dataset, model, label, metric)
            seeds = max(seeds, len(values))
            text = _fmt(*_stats(list(values.values())), bold=model in bests[metric])
            rank = ranks[metric].get(model)
            cells.append(f"{text} ({rank})" if rank else text)
        if seeds:
            lines.append([model, seeds, *cells])
    return lines


def summary_table(rows, dataset: str, models: Sequence[str], label: str = TARGET_LABEL) -> List[str]:
    """The answer first: the paper's four metrics at `label`, mean ± std over seeds, rank, significance."""
    return markdown_table(["Method", "seeds", *(TITLES[m] for m in PAPER_METRICS)],
                          summary_rows(rows, dataset, models, label))


def mean_verdict(rows, dataset: str, models: Sequence[str], label: str = TARGET_LABEL,
                 study: str = "table1") -> List[str]:
    """Per paper metric: MEAN's rank, the best other model, the difference and its paired-test p."""
    out = []
    others = [m for m in models if m not in ("mean", "oracle")]
    for metric in PAPER_METRICS:
        mine = per_seed(rows, study, dataset, "mean", label, metric)
        if not mine:
            continue
        sign = 1.0 if metrics.HIGHER_IS_BETTER[metric] else -1.0
        scored = [(sign * _stats(list(per_seed(rows, study, dataset, m, label, metric).values()))[0], m)
                  for m in others]
        scored = [t for t in scored if np.isfinite(t[0])]
        if not scored:
            continue
        best_score, best = max(scored)
        me = sign * _stats(list(mine.values()))[0]
        rank = 1 + sum(score > me for score, _ in scored)
        p = paired_p(mine, per_seed(rows, study, dataset, best, label, metric))
        word = "leads" if me > best_score else "trails"
        verdict = "significant" if np.isfinite(p) and p < SIGNIFICANCE else "not significant"
        ptext = f"p = {p:.3f}" if np.isfinite(p) else "too few seeds for a test"
        out.append(f"- {TITLES[metric]}: MEAN ranks {rank} of {len(scored) + 1}; it {word} the best other model "
                   f"({best}) by {abs(me - best_score):.4f} ({ptext}, {verdict}).")
    return out


def tuning_table(rows, dataset: str) -> List[str]:
    """The searches, per model: trials, the scores the rule compared (defaults, best, runner-up, the gap between
    the best two) next to the noise (the defaults' seed spread, the margin), and the chosen setting."""
    found = [r for r in rows if r["status"] == "ok" and r["study"] == "tune" and r["dataset"] == dataset]
    if not found:
        return []

    def score(value):
        return f"{value:.4f}" if value is not None and np.isfinite(value) else "n/a"

    lines = []
    for r in sorted(found, key=lambda r: TUNED_MODELS.index(r["model"]) if r["model"] in TUNED_MODELS else 99):
        setting = ", ".join(f"{k}={v}" for k, v in sorted(r["tuned"].items()))
        choice = r.get("choice")
        if choice is None:  # protocol 1: the best trial, no defaults' trial, no margin
            scores = sorted((t["score"] for t in r.get("trials", []) if t.get("score") is not None), reverse=True)
            choice = {"best": r["eval_score"], "runner_up": scores[1] if len(scores) > 1 else float("nan"),
                      "default": float("nan"), "margin": float("nan"), "adopted": True}
        gap = choice["best"] - choice["runner_up"]
        verdict = "best trial" if choice["adopted"] else "defaults (best within the margin)"
        lines.append([r["model"], r["trial_count"], score(choice["default"]), score(choice["best"]),
                      score(choice["runner_up"]), score(gap), score(choice["margin"]), verdict, setting])
    return markdown_table(["Model", "trials", "defaults' score", "best score", "runner-up", "best − runner-up",
                           "noise (defaults' seed spread)", "chosen", "chosen setting"], lines)


def protocol_rows(rows: Sequence[dict], planned: Sequence = ()) -> Tuple[List[dict], List[str]]:
    """The rows the report shows, and a line per (study, dataset) shown under an older tuning protocol.

    Cells of the searches and of the studies that train with their setting record their protocol (rows without
    one are protocol 1). A (study, dataset) is shown under the newest protocol whose planned cells all finished,
    else under the newest older one that has rows, so a half-finished rerun never mixes with the old rows."""
    planned_by = defaultdict(lambda: defaultdict(set))
    for c in planned:
        planned_by[(c.study, c.dataset)][c.protocol].add(c.key)
    done = defaultdict(lambda: defaultdict(set))
    for r in rows:
        if r["status"] == "ok":
            done[(r["study"], r["dataset"])][r.get("protocol", 1)].add(r["key"])
    shown, notes = {}, []
    for group, by_protocol in done.items():
        if len(by_protocol) == 1 and not planned_by[group]:
            continue
        newest = max(set(by_protocol) | set(planned_by[group]))
        complete = planned_by[group][newest] <= by_protocol.get(newest, set()) if planned_by[group] else True
        older = [p for p in by_protocol if p < newest]
        if complete or not older:
            shown[group] = newest
        else:
            shown[group] = max(older)
            notes.append(f"{group[0]} on {group[1]}: protocol {shown[group]} ({PROTOCOLS[shown[group]]}); protocol "
                         f"{newest} has {len(by_protocol.get(newest, set()) & planned_by[group][newest])} of "
                         f"{len(planned_by[group][newest])} cells")
    kept = [r for r in rows if shown.get((r["study"], r["dataset"]), r.get("protocol", 1)) == r.get("protocol", 1)]
    return kept, notes


def noise_table(rows, dataset: str, models: Sequence[str] = NOISE_MODELS) -> List[str]:
    """How much the eval criterion (normalised Gini) moves at a fixed setting: across seeds (the spread a tuning
    choice must beat), and from one epoch to the next."""
    lines = []
    for model in models:
        found = noise.per_seed(rows, dataset, model)
        if found:
            best, top3, step = (np.array([v[i] for v in found.values()]) for i in range(3))
            spread = noise.margin(found)
            lines.append([model, len(found), _fmt(*_stats(best)), _fmt(*_stats(top3)),
                          f"{spread:.4f}" if np.isfinite(spread) else "n/a",
                          f"{np.nanmean(step):.4f}" if np.isfinite(step).any() else "n/a"])
    return markdown_table(["Model", "seeds", "best eval Gini (seed spread)", "mean of the best 3 epochs",
                           "max − min of it over seeds (a search's margin)", "epoch-to-epoch change (median)"],
                          lines) if lines else []


def neural_table(rows, dataset: str, models: Sequence[str] = NEURAL_MODELS) -> List[str]:
    """Every neural model under each variant against its defaults, eval split: eval Gini and Spearman at the selected
    epoch, the change in the trial score (the mean of the best 3 epochs, paired over seeds) and whether it exceeds the
    defaults' seed spread of that score (the margin of the noise table), the rule a search follows too."""
    lines = []
    for model in models:
        default = per_seed(rows, "noise", dataset, model, TARGET_LABEL, "normalized_gini", "eval_metrics")
        if not default:
            continue
        found = noise.per_seed(rows, dataset, model)
        default_scores, margin = {seed: v[1] for seed, v in found.items()}, noise.margin(found)
        lines.append([model, "defaults", _fmt(*_stats(list(default.values()))),
                      _fmt(*_stats(list(per_seed(rows, "noise", dataset, model, TARGET_LABEL, "spearman",
                                                 "eval_metrics").values()))), "", ""])
        for name in NEURAL_VARIANTS:
            found = [r for r in rows if r.get("variant") == name]
            gini = per_seed(found, "neural", dataset, model, TARGET_LABEL, "normalized_gini", "eval_metrics")
            if not gini:
                continue
            scores = {r["seed"]: noise.row_scores(r) for r in found
                      if r["status"] == "ok" and r["study"] == "neural" and r["dataset"] == dataset and r["model"] == model}
            shared = sorted(s for s in set(scores) & set(default_scores) if scores[s] is not None)
            change = float(np.mean([scores[s][1] - default_scores[s] for s in shared])) if shared else float("nan")
            beats = "yes" if np.isfinite(change) and np.isfinite(margin) and change > margin else "no"
            lines.append([model, name, _fmt(*_stats(list(gini.values()))),
                          _fmt(*_stats(list(per_seed(found, "neural", dataset, model, TARGET_LABEL, "spearman",
                                                     "eval_metrics").values()))),
                          f"{change:+.4f}" if np.isfinite(change) else "—", beats])
    if not any(line[1] != "defaults" for line in lines):  # no variant has run yet
        return []
    return markdown_table(["Model", "variant", "eval Gini ↑", "eval Spearman ↑",
                           "trial-score change vs defaults", "beats the margin"], lines)


def choices_table(rows, dataset: str, label: str = TARGET_LABEL) -> List[str]:
    """MEAN's BN and reading switches at the default hyperparameters, judged on the eval split."""
    found = {name: per_seed([r for r in rows if r.get("variant") == name], "choice", dataset, "mean", label,
                            "normalized_gini", "eval_metrics") for name in CHOICES}
    found = {k: v for k, v in found.items() if v}
    if not found:
        return []
    lines = []
    default = found.get("default", {})
    for name, ginis in found.items():
        pm = per_seed([r for r in rows if r.get("variant") == name], "choice", dataset, "mean", label,
                      "percentile_mape", "eval_metrics")
        versus = ""
        if name != "default" and default:
            diff = _stats(list(ginis.values()))[0] - _stats(list(default.values()))[0]
            p = paired_p(ginis, default)
            versus = f"{diff:+.4f}" + (f", p = {p:.3f}" if np.isfinite(p) else "")
        lines.append([name, len(ginis), _fmt(*_stats(list(ginis.values()))), _fmt(*_stats(list(pm.values()))), versus])
    return markdown_table(["Choice", "seeds", "eval Gini ↑", "eval Percentile MAPE ↓", "vs default (eval Gini, paired p)"],
                          lines)


def selection_table(rows, dataset: str, models: Sequence[str], label: str = TARGET_LABEL) -> List[str]:
    """Where model selection stopped each model at `label`: epochs run, selected epoch, steps, budget hits."""
    lines = []
    for model in models:
        found = [r for r in rows if r["status"] == "ok" and r["study"] == "table1" and r["dataset"] == dataset
                 and r["model"] == model and label in r["labels"] and r.get("fit")]
        if found:
            lines.append([model, f"{np.mean([r['epochs_run'] for r in found]):.1f}",
                          f"{np.mean([r['best_epoch'] for r in found]):.1f}",
                          f"{np.mean([r['fit']['steps'] for r in found]):.0f}",
                          f"{sum(r['fit']['hit_max_steps'] for r in found)} of {len(found)}",
                          _fmt(*_stats([r['fit']['selection'] for r in found]))])
    return markdown_table(["Method", "epochs run (mean)", "selected epoch (mean)", "steps (mean)", "hit max_steps",
                           "eval Gini at selection"], lines) if lines else []


def calibration_shapes(rows, dataset: str, model: str, label: str) -> Dict[int, str]:
    """{seed: calibration shape} of a model's Table 1 cells; cells from before the "auto" choice
    recorded none and were calibrated with isotonic regression."""
    return {r["seed"]: r.get("calibration", {}).get(label, "isotonic") for r in rows
            if r["status"] == "ok" and r["study"] == "table1" and r["dataset"] == dataset and r["model"] == model
            and label in r.get("calibrated_metrics", {})}


def calibration_table(rows, dataset: str, models: Sequence[str], label: str = TARGET_LABEL) -> List[str]:
    """Money calibration at `label` (test split): value ratio and Percentile MAPE of each model's own prediction
    and after the eval-fitted calibration the serving model carries (`mean_tf.training.calibration`), mean ± std over the
    seeds that recorded both, and the shape each seed's calibration took."""
    lines = []
    for model in models:
        after = {m: per_seed(rows, "table1", dataset, model, label, m, key="calibrated_metrics")
                 for m in ("value_ratio", "percentile_mape", "normalized_gini")}
        seeds = sorted(after["value_ratio"])
        if not seeds:
            continue
        before = {m: per_seed(rows, "table1", dataset, model, label, m) for m in after}
        cell = lambda d, m: _fmt(*_stats([d[m][s] for s in seeds]))  # noqa: E731
        gini_change = max(abs(after["normalized_gini"][s] - before["normalized_gini"][s]) for s in seeds)
        shapes = Counter(calibration_shapes(rows, dataset, model, label)[s] for s in seeds)
        shape = ", ".join(f"{name} ×{n}" for name, n in sorted(shapes.items()))
        lines.append([model, len(seeds), shape, cell(before, "value_ratio"), cell(after, "value_ratio"),
                      cell(before, "percentile_mape"), cell(after, "percentile_mape"), f"≤ {gini_change:.1e}"])
    return markdown_table(["Method", "seeds", "shape", "value ratio (model)", "value ratio (calibrated)",
                           "Percentile MAPE (model)", "Percentile MAPE (calibrated)", "Gini change"],
                          lines) if lines else []


def table1(rows, dataset: str, table, models: Sequence[str], labels=LABELS, shown=SHOWN) -> str:
    lines = []
    for label in labels:
        bests = {m: best_models(rows, "table1", dataset, models, label, m) for m in shown}
        first = True
        for model in models:
            if label not in table.get(model, {}):
                continue
            cells = [_fmt(*_stats(table[model][label][m]), bold=model in bests[m]) for m in shown]
            lines.append([label if first else "", model, *cells])
            first = False
    return "\n".join(markdown_table(["Period", "Method", *(TITLES[m] for m in shown)], lines))


def rank_summary(table, models: Sequence[str], labels=LABELS) -> List[str]:
    """One sentence per horizon: who wins on Gini and on Percentile MAPE, and where MEAN ranks."""
    out = []
    for label in labels:
        parts = []
        for metric in ("normalized_gini", "percentile_mape"):
            scored = []
            for model in models:
                mean, _, _ = _stats(table.get(model, {}).get(label, {}).get(metric, []))
                if np.isfinite(mean):
                    scored.append((mean if metrics.HIGHER_IS_BETTER[metric] else -mean, model))
            if not scored:
                continue
            scored.sort(reverse=True)
            ranking = [m for _, m in scored]
            mean_rank = ranking.index("mean") + 1 if "mean" in ranking else None
            parts.append(f"{TITLES[metric]}: best {ranking[0]}"
                         + (f", MEAN ranks {mean_rank} of {len(ranking)}" if mean_rank else ""))
        if parts:
            out.append(f"- {label}: " + "; ".join(parts) + ".")
    return out


def _sweep_figure(rows, dataset, study, param, values, figdir) -> List[str]:
    paths = []
    for metric in ("percentile_mape", "normalized_gini"):
        series, errors = {}, {}
        for label in LABELS:
            means, stds = [], []
            for v in values:
                if param == "num_distributions" and v == 5:  # the default, untuned: Table 1's MEAN cells
                    t = collect(rows, "table1", dataset)["mean"]
                else:
                    t = collect(rows, study, dataset, overrides={param: v})["mean"]
                mean, std, _ = _stats(t.get(label, {}).get(metric, []))
                means.append(mean)
                stds.append(std)
            if np.isfinite(means).sum() >= 2:  # a sweep needs two points
                series[label], errors[label] = means, stds
        if not series:
            continue
        ax = plots.sweep(values, series, errors, xlabel=param, ylabel=TITLES[metric],
                         title=f"MEAN on {dataset}: {TITLES[metric]} vs {param}", log_x=param == "huber_delta")
        paths.append(plots.save(ax, os.path.join(figdir, f"{dataset}_{study}_{metric}.png")))
    return paths


def _seed0_rows(rows, dataset, label=TARGET_LABEL):
    return {r["model"]: r for r in rows if r["status"] == "ok" and r["study"] == "table1" and r["dataset"] == dataset
            and r["seed"] == 0 and label in r["labels"] and r.get("fit")}


def _curve_figures(rows, dataset, figdir, label=TARGET_LABEL) -> List[str]:
    """Per-epoch eval curves (seed 0, `label`): every model's selection criterion, and MEAN's loss terms."""
    found = _seed0_rows(rows, dataset, label)
    paths = []
    if found:
        series = {m: r["fit"]["history"]["val_selection"] for m, r in sorted(found.items())}
        ax = plots.loss_curves(series, keys=list(series), ylabel="eval normalised Gini",
                               title=f"{dataset}: eval Gini per epoch ({label}, seed 0)")
        paths.append(plots.save(ax, os.path.join(figdir, f"{dataset}_eval_gini_per_epoch.png")))
    if "mean" in found:
        ax = plots.loss_curves(found["mean"]["fit"]["history"], title=f"{dataset}: MEAN loss terms (seed 0)")
        paths.append(plots.save(ax, os.path.join(figdir, f"{dataset}_mean_loss_terms.png")))
    return paths


def diagnostics_table(rows, dataset: str, label: str = TARGET_LABEL) -> List[str]:
    """MEAN-family diagnostics (test split, mean over seeds): attention entropy, agreements, gate usage."""
    keys = ("attention_entropy", "attention_vs_dam", "attention_vs_bucket", "dam_vs_bucket")
    lines = []
    by_model = defaultdict(list)
    for r in rows:
        if (r["status"] == "ok" and r["study"] == "table1" and r["dataset"] == dataset and label in r["labels"]
                and r.get("diagnostics")):
            by_model[r["model"]].append(r["diagnostics"])
    for model, found in by_model.items():
        cells = [_fmt(*_stats([d.get(k, float("nan")) for d in found])) for k in keys]
        usage = np.mean([d["gate_usage"] for d in found if "gate_usage" in d], axis=0)
        lines.append([model, len(found), *cells, " / ".join(f"{u:.2f}" for u in np.atleast_1d(usage))])
    return markdown_table(["Method", "seeds", *keys, "gate usage per expert"], lines) if by_model else []


def _gain_figure(rows, dataset, figdir, label=TARGET_LABEL):
    curves = {}
    for r in rows:
        if (r["status"] == "ok" and r["study"] == "table1" and r["dataset"] == dataset and r["seed"] == 0
                and label in r.get("gain", {})):
            curves[r["model"]] = r["gain"][label]
    if not curves:
        return None
    ax = plots.gain_curves(dict(sorted(curves.items())), title=f"{dataset}: gain curve, {label} (seed 0)")
    return plots.save(ax, os.path.join(figdir, f"{dataset}_gain_{label}.png"))


def _labels(rows, dataset) -> List[str]:
    """The labels of a dataset's Table 1 cells: the four horizons in order, then any other (a user dataset's)."""
    found = {label for r in rows if r["dataset"] == dataset and r["study"] == "table1" for label in r["labels"]}
    return [label for label in LABELS if label in found] + sorted(found - set(LABELS))


def coverage(rows, planned) -> List[str]:
    """How much of the plan the results hold, per study and dataset (an unfinished run says so).

    A skipped cell (a model that cannot score the dataset, with its reason) counts as done, as it does for
    `mean-tf benchmark run`, which does not retry it.
    """
    status = {r["key"]: r["status"] for r in rows}
    counts = defaultdict(Counter)  # (study, dataset) -> {"ok"|"skipped"|"failed"|"left": cells}
    for cell in planned:
        counts[(cell.study, cell.dataset)][status.get(cell.key, "left")] += 1
    ran, skipped = (sum(c[s] for c in counts.values()) for s in ("ok", "skipped"))
    left = len(planned) - ran - skipped
    out = [f"Plan coverage: {ran} of {len(planned)} planned cells finished, {skipped} skipped with their reason"
           + (" (the run is complete)." if not left else f"; {left} left, which `mean-tf benchmark run` resumes."),
           ""]
    out += markdown_table(["study", "dataset", "finished", "skipped", "planned"],
                          [[study, dataset, c["ok"], c["skipped"], sum(c.values())]
                           for (study, dataset), c in sorted(counts.items())])
    return out + [""]


def render(results_path: str, docs_dir: str, meta: Dict | None = None, discussion: str | None = None,
           planned: Sequence = (), settings: Dict | None = None, command: str = "mean-tf benchmark report",
           scale_plan=None) -> str:
    """Write `<docs_dir>/results.md` and `<docs_dir>/figures/`; returns the report path.

    `discussion`: a hand-written Markdown file (the reading of the numbers) included as its own section.
    `planned`: the plan's cells, for the coverage table; `settings`: the config changes every cell used;
    `command`: the command that renders this report (named in its header); `scale_plan`: the scale study's
    plan (`plan.scale_only`), for its section.
    """
    rows, older = protocol_rows(read_results(results_path), planned)
    figdir = os.path.join(docs_dir, "figures")
    os.makedirs(figdir, exist_ok=True)
    meta = meta or {}
    built = ("online_retail_ii", "cdnow", "synthetic")
    datasets = [d for d in built if any(r["dataset"] == d for r in rows)]
    datasets += sorted({r["dataset"] for r in rows} - set(built))  # user-built (`--datasets NAME:FOLDER`)
    md = ["# mean-tf benchmark results", "",
          f"Generated by `{command}` from `{os.path.relpath(results_path, docs_dir)}`; do not edit by hand.",
          f"Produced by these runs (each resumes the results file), then `{command}`:", ""]
    md += [f"- `{c}`" for c in meta.get("commands", ["mean-tf benchmark run"])] + [""]
    info = {k: v for k, v in meta.items() if k != "commands"}
    info["cell wall time (sum over the cells, s)"] = round(sum(r.get("wall_s", 0) for r in rows), 1)
    md += markdown_table(["", ""], list(info.items())) + [""]
    md += ["Protocol (`mean_tf.training.protocol`, the same for every Keras model): model selection on the eval split's "
           "normalised Gini of the money prediction (ties to the model's prediction loss), patience 10 epochs, a "
           "budget of `max_steps` optimizer steps, batch-norm momentum derived from the steps per epoch, deterministic "
           "ops. Every tunable model gets the same search budget on the eval split (section Tuning); the test split "
           "is scored once per cell. Metrics come from `mean_tf.evaluation.metrics.evaluate`, mean ± std over seeds; a cell is "
           f"**bold** only when its lead over the runner-up is significant (paired t-test over seeds, p < "
           f"{SIGNIFICANCE}). ↓ lower is better, ↑ higher is better. Multi-horizon models (mtl_ziln, odmn, "
           "mtl_mean) are trained once and scored per horizon.", ""]
    if settings:
        md += ["Settings of every cell (changes to `MEANConfig`'s defaults, chosen before the run): "
               + ", ".join(f"{k}={v}" for k, v in settings.items()) + ".", ""]
    statuses = defaultdict(int)
    for r in rows:
        statuses[r["status"]] += 1
    md += [f"Cells in the results file: {dict(statuses)}.", ""]
    if planned:
        md += coverage(rows, planned)
    if older:
        md += ["Shown under an older tuning protocol until the current one's cells have all finished:", ""]
        md += [f"- {line}" for line in older] + [""]
    for dataset in datasets:
        t = collect(rows, "table1", dataset)
        labels = _labels(rows, dataset)
        target = TARGET_LABEL if TARGET_LABEL in labels or not labels else labels[-1]
        models = [m for m in TABLE1_MODELS + ("oracle",) if m in t]
        info = next((r.get("dataset_info") for r in rows if r["dataset"] == dataset and r.get("dataset_info")), {})
        md += [f"## {dataset}", ""]
        if info:
            md += [", ".join(f"{k}: {v}" for k, v in info.items()), ""]
        md += [f"### Summary: {target}, the paper's four metrics (test split)", "",
               "Mean ± std over seeds, rank in brackets; **bold**: the best model's lead over the runner-up is "
               f"significant (paired t-test over seeds, p < {SIGNIFICANCE}).", ""]
        md += summary_table(rows, dataset, models, target) + [""]
        verdict = mean_verdict(rows, dataset, models, target)
        if verdict:
            md += ["Where MEAN stands:", ""] + verdict + [""]
        noise, neural = noise_table(rows, dataset), neural_table(rows, dataset)
        if noise:
            md += [f"### Noise of the eval criterion ({target}, eval split, the neural models and the GBDT at their "
                   "defaults)", "",
                   "Best eval normalised Gini over the epochs, mean ± seed spread; the mean of the best 3 epochs "
                   "(a smoother trial score); the median change of the eval Gini from one epoch to the next. A "
                   "setting chosen by eval Gini must beat the seed spread. Multi-horizon models (mtl_mean, mtl_ziln, "
                   "odmn) select on the mean over their four horizons, so theirs is that mean.", ""] + noise + [""]
        if neural:
            md += [f"### Neural variants ({target}, eval split): encodings, regularisation, label reading", "",
                   "Each neural model at its defaults and under one change (`mean_tf.benchmark.plan.NEURAL_VARIANTS`), "
                   "judged like a search: by the change in its trial score (the mean of the best 3 epochs), paired "
                   "over seeds, against the defaults' seed spread of that score (the noise table's margin). "
                   "ple / bins = quantile-based numeric encodings, dropout 0.1, AdamW weight decay 1e-4, log1p labels. "
                   "mean_ziln is MEAN's body under a ZILN head, an extension beyond the paper. A variant is adopted "
                   "only where its gain beats the margin; the test split plays no part.", ""] + neural + [""]
        searches = tuning_table(rows, dataset)
        if searches:
            md += ["### Tuning (eval split only)", "",
                   "Every tunable model got the same budget and rule (`mean_tf.training.tuning`): random-search "
                   "trials over learning rate, width, dropout, weight decay and its own knob (GBDT: learning rate, "
                   "leaves, L2). Protocol 2: the first trial is the defaults, a trial scores the mean of its best 3 "
                   "epochs' eval Gini, and the best trial is chosen only if it beats the defaults by more than their "
                   "seed spread (the noise table); protocol 1 rows (6 trials, best epoch, no defaults' trial) show "
                   "n/a there. The setting found at cltv_365 (seed 0) is reused for every seed and horizon; the "
                   "ablations and MEAN's studies use MEAN's. BG/NBD + Gamma-Gamma and last-period have nothing to tune.",
                   ""] + searches + [""]
        choices = choices_table(rows, dataset)
        if choices:
            md += ["### MEAN's batch norm and the paper's two ambiguous readings (eval split)", "",
                   "At the default hyperparameters; `default` = BN momentum derived from the steps per epoch, gates "
                   "on x_u (eq. 3 as written), teacher σ(θ̂; τ) (eq. 14 as written).", ""] + choices + [""]
        md += ["### Table 1: overall performance (test split)", "", table1(rows, dataset, t, models, labels or LABELS),
               ""]
        stops = selection_table(rows, dataset, [m for m in models if m != "oracle"], target)
        if stops:
            md += [f"Model selection at {target}:", ""] + stops + [""]
        calibrated = calibration_table(rows, dataset, [m for m in models if m != "oracle"], target)
        if calibrated:
            md += [f"### Money calibration ({target}, test split)", "",
                   "Value ratio = predicted total / actual total (1 is calibrated). \"calibrated\": the model's "
                   "prediction through the strictly increasing map fitted on the eval split "
                   "(`mean_tf.training.calibration`), which the exported serving model applies; rankings, and so Gini, "
                   "are unchanged (last column: the largest Gini difference seen). Shape: isotonic regression or the "
                   "level alone, chosen per cell by the lower out-of-fold Percentile MAPE on the eval split "
                   "(`calibration = \"auto\"`); cells run before that choice existed used isotonic. Cells run "
                   "before calibration was recorded are left out.", ""] + calibrated + [""]
        diagnosis = diagnostics_table(rows, dataset, target)
        if diagnosis:
            md += [f"### Diagnostics of MEAN ({target}, test split)", "",
                   "attention_entropy: entropy of θ̂ / log n (1 = uniform); attention_vs_dam: argmax θ̂ = argmax b̂; "
                   "attention_vs_bucket / dam_vs_bucket: the argmax is the true bucket; gate usage: mean gate weight "
                   "per expert (eq. 3).", ""] + diagnosis + [""]
        curves = _curve_figures(rows, dataset, figdir, target)
        if curves:
            md += [f"![{os.path.basename(p)}](figures/{os.path.basename(p)})" for p in curves] + [""]
        md += ["Rankings per horizon:", ""] + rank_summary(t, [m for m in models if m != "oracle"],
                                                           labels or LABELS) + [""]
        skipped = sorted({(r["model"], r.get("error", "")) for r in rows
                          if r["dataset"] == dataset and r["status"] != "ok"})
        if skipped:
            md += ["Not run or failed here:", ""] + [f"- {e}" if e.startswith(f"{m}: ") else f"- {m}: {e}"
                                                     for m, e in skipped] + [""]
        ablation = [m for m in ("mean",) + ABLATION_MODELS if m in t]
        if len(ablation) > 1:
            for number, metric in ((2, "percentile_mape"), (3, "payer_auc")):
                md += [f"### Table {number}: ablations, {TITLES[metric]}", ""]
                md += markdown_table(["Method", *LABELS], [[m, *(_fmt(*_stats(t[m].get(label, {}).get(metric, [])))
                                                                  for label in LABELS)] for m in ablation])
                md.append("")
        variant_rows = []
        for name in VARIANTS:
            v = collect(rows, "variant", dataset, variant=name).get("mean")
            if v:
                variant_rows.append((name, v))
        if variant_rows:
            md += ["### Stop-gradient choices and label scaling (MEAN)", "",
                   "Default (first row): L_kl reaches the attention only, the soft L_dis term reaches DAM only, "
                   "labels divided by the mean positive train label (label_scaling=scale).", ""]
            md += markdown_table(["Variant", "Metric", *LABELS],
                                 [[name, TITLES[metric], *(_fmt(*_stats(v.get(label, {}).get(metric, [])))
                                                           for label in LABELS)]
                                  for name, v in [("default", t.get("mean", {}))] + variant_rows
                                  for metric in ("percentile_mape", "normalized_gini", "payer_auc")])
            md.append("")
        figs = _sweep_figure(rows, dataset, "delta", "huber_delta", DELTAS, figdir)
        figs += _sweep_figure(rows, dataset, "n", "num_distributions", NUM_DISTRIBUTIONS, figdir)
        if figs:
            md += ["### Figures 2 and 3: Huber δ and number of sub-distributions n", ""]
            md += [f"![{os.path.basename(p)}](figures/{os.path.basename(p)})" for p in figs] + [""]
        md += ["### Targeting study (offline A/B counterpart)", "",
               f"Target the top 10 % of test customers by predicted {target}; a random 10 % captures 10 % "
               "of the future value in expectation.", ""]
        targeting = []
        for m in models:
            mean, std, n = _stats(t[m].get(target, {}).get("lift_at_10", []))
            if np.isfinite(mean):
                targeting.append([m, _fmt(mean * 0.1, std * 0.1, n), _fmt(mean, std, n)])
        md += markdown_table(["Method", "share of future value captured", "lift over random"],
                             targeting + [["random 10 %", "0.1000", "1.0000"]])
        gain = _gain_figure(rows, dataset, figdir, target)
        if gain:
            md += ["", f"![gain curve](figures/{os.path.basename(gain)})"]
        md.append("")
    if scale_plan is not None:
        md += scale_section(rows, scale_plan, figdir)
    if discussion and os.path.exists(discussion):
        with open(discussion, encoding="utf-8") as f:
            md += ["## Discussion", "", f"(From `{discussion}`, written after reading the tables above.)", "",
                   f.read().strip(), ""]
    path = os.path.join(docs_dir, "results.md")
    write_text(path, "\n".join(md) + "\n")
    return path


# --- the scale study ---------------------------------------------------------------------------------------------
SCALE_FIGURE_METRICS = ("normalized_gini", "spearman", "percentile_mape")


def _shape_name(informative: Sequence[int], features: int) -> str:
    return f"{informative[0]} numeric + {informative[1]} categorical of {features} features informative"


def scale_datasets(rows) -> Dict[str, dict]:
    """{dataset: its scale info (training rows, features, informative counts, the search it used)} of the
    finished scale cells, ordered by shape (fewest informative features first), then training rows."""
    found = {r["dataset"]: r["scale"] for r in rows if r["status"] == "ok" and r["study"] == "scale" and r.get("scale")}
    return dict(sorted(found.items(), key=lambda kv: (sum(kv[1]["informative"]), kv[1]["train_rows"])))


def _shapes(datasets: Dict[str, dict]) -> Dict[str, List[str]]:
    """{shape name: its datasets, by training rows}."""
    out = defaultdict(list)
    for name, info in datasets.items():
        out[_shape_name(info["informative"], info["features"])].append(name)
    return dict(out)


def _scale_figure(rows, shape: str, datasets: Sequence[str], info: Dict[str, dict], models, figdir, index: int):
    """Gini, Spearman and Percentile MAPE against training rows (log axis), mean ± std over seeds per model."""
    x = [info[d]["train_rows"] for d in datasets]
    panels, errors = {}, {}
    for metric in SCALE_FIGURE_METRICS:
        title = TITLES[metric]
        panels[title], errors[title] = {}, {}
        for model in models:
            stats = [_stats(list(per_seed(rows, "scale", d, model, TARGET_LABEL, metric).values())) for d in datasets]
            if sum(np.isfinite(mean) for mean, _, _ in stats):
                panels[title][model] = [mean for mean, _, _ in stats]
                errors[title][model] = [std if n > 1 else 0.0 for _, std, n in stats]
    fig = plots.learning_curves(x, panels, errors, title=f"synthetic, {shape}: test split, {TARGET_LABEL}")
    return plots.save(fig, os.path.join(figdir, f"scale_{index}.png"))


def _line(xs: Sequence[float], ys: Sequence[float]):
    """(intercept, slope) of ys against log10(xs), or None with fewer than two sizes."""
    xs, ys = np.log10(np.asarray(xs, dtype=float)), np.asarray(ys, dtype=float)
    keep = np.isfinite(ys)
    if len(set(xs[keep])) < 2:
        return None
    slope, intercept = np.polyfit(xs[keep], ys[keep], 1)
    return float(intercept), float(slope)


def gini_fits(rows, datasets: Sequence[str], info: Dict[str, dict], models: Sequence[str]) -> List[str]:
    """A straight line of test Gini against log10(training rows) per model (every seed a point), and where
    MEAN's line meets each other model's within the measured range; nothing past the largest measured size."""
    lines, fits = [], {}
    for model in models:
        points = [(info[d]["train_rows"], v) for d in datasets
                  for v in per_seed(rows, "scale", d, model, TARGET_LABEL, "normalized_gini").values()]
        fit = _line([p[0] for p in points], [p[1] for p in points]) if points else None
        if fit is not None:
            fits[model] = fit
    if not fits:
        return []
    lo, hi = (np.log10(info[d]["train_rows"]) for d in (datasets[0], datasets[-1]))
    at = lambda fit, x: fit[0] + fit[1] * x  # noqa: E731
    table = []
    for model, fit in fits.items():
        verdict = ""
        if "mean" in fits and model not in ("mean", "oracle"):
            gap_lo, gap_hi = at(fits["mean"], lo) - at(fit, lo), at(fits["mean"], hi) - at(fit, hi)
            if gap_lo * gap_hi < 0:
                cross = lo + (hi - lo) * gap_lo / (gap_lo - gap_hi)
                verdict = f"cross at about {10 ** cross:,.0f} training rows"
            elif abs(gap_hi) < abs(gap_lo):
                verdict = "converge, but do not meet within the measured range"
            else:
                verdict = "do not converge within the measured range"
            verdict = f"MEAN − {model}: {gap_lo:+.4f} → {gap_hi:+.4f}; the lines {verdict}"
        table.append([model, f"{fit[1]:+.4f}", f"{at(fit, lo):.4f}", f"{at(fit, hi):.4f}", verdict])
    lines += markdown_table(["Method", "Gini per 10× rows (slope)", f"fit at {10 ** lo:,.0f} training rows",
                             f"fit at {10 ** hi:,.0f} training rows", "MEAN's gap (fit, smallest → largest size)"], table)
    return lines


def _scale_settings(rows, plan, info: Dict[str, dict]) -> List[str]:
    """The datasets of the scale plan: size, shape, seeds finished of planned, whose search set the models."""
    searches = {r["dataset"]: r["trial_count"] for r in rows if r["status"] == "ok" and r["study"] == "tune"}
    finished = Counter(r["dataset"] for r in rows if r["status"] == "ok" and r["study"] == "scale"
                       and r["model"] != "oracle")
    table = []
    for s in plan.scale_sets:
        known = info.get(s.dataset)
        spec = s.synthetic_spec()
        shape = _shape_name(known["informative"] if known else
                            (spec.n_informative_numeric, spec.n_informative_categorical), spec.n_features)
        source = s.tuned_on or s.dataset
        trials = f"{source} ({searches[source]} trials)" if source in searches else f"{source} (not run yet)"
        train = f"{known['train_rows']:,}" if known else "not built yet"
        table.append([s.dataset, f"{s.rows:,}", train, shape, ", ".join(map(str, s.seeds)),
                      f"{finished[s.dataset]} of {len(s.seeds) * len(plan.scale_models)}", trials,
                      " ".join(s.beam_pipeline_args) or "in memory"])
    return markdown_table(["dataset", "rows", "training rows", "shape", "seeds", "model cells finished",
                           "settings from the search on", "Transform (Beam)"], table)


def _not_run(rows, plan, planned) -> List[str]:
    """The planned scale cells (and their searches) without a result, per dataset and reason: "- dataset, reason:
    model (search), model (seeds 0, 1), ..."."""
    latest = {r["key"]: r for r in rows}
    missing = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))  # dataset -> reason -> model -> what
    for cell in planned:
        row = latest.get(cell.key)
        if row is not None and row["status"] == "ok":
            continue
        if row is not None:
            reason = f"{row['status']}: {row.get('error', '')}"
        elif plan_blocked(plan, cell):
            reason = plan_blocked(plan, cell)
        elif latest.get(dataclasses.replace(cell, study="table1").key, {}).get("status") == "ok":
            reason = "not run yet (Table 1 ran it: `mean-tf benchmark run --only scale` counts it)"
        else:
            reason = "not run yet"
        missing[cell.dataset][reason][cell.model].append("search" if cell.study == "tune" else cell.seed)
    out = []
    for dataset, reasons in missing.items():
        for reason, models in reasons.items():
            items = []
            for model, what in models.items():
                seeds = [w for w in what if w != "search"]
                items += [f"{model} (search)"] * (len(seeds) < len(what))
                if seeds:
                    items.append(f"{model} (seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))})")
            out.append(f"- {dataset}, {reason}: {', '.join(items)}")
    return out


def scale_section(rows, plan, figdir: str) -> List[str]:
    """The Scale section: test quality against training rows per model on synthetic data, with the oracle, the
    numbers, MEAN's rank and paired gap per size and shape, line fits of Gini, the two shapes side by side, and
    the cells not run."""
    planned = plan_cells(plan)
    info = scale_datasets(rows)
    models = [m for m in plan.scale_models] + ["oracle"]
    status = {r["key"]: r["status"] for r in rows}
    done = sum(status.get(c.key) == "ok" for c in planned)
    reusers = defaultdict(list)
    for s in plan.scale_sets:
        if s.tuned_on:
            reusers[s.tuned_on].append(s.dataset)
    reuse = "".join(f" {' and '.join(users)} reuse{'s' if len(users) == 1 else ''} the setting of the search on "
                    f"{source} unchanged." for source, users in reusers.items())
    copies = sum(1 for r in rows if r["status"] == "ok" and r["study"] == "scale" and r.get("same_as"))
    md = ["## Scale: quality against training rows (synthetic data, test split)", "",
          f"Scale plan: {done} of {len(planned)} cells finished (`mean-tf benchmark run --only scale` resumes it). "
          f"Models at {TARGET_LABEL}: {', '.join(plan.scale_models)}, and the oracle (the true expected value). Each "
          "dataset is generated apart with the same generator settings (seed 0). Every model is tuned once, with "
          "the benchmark's search on the eval split of the dataset named in \"settings from the search on\"."
          + reuse + (f" {copies} cells are Table 1's own (the same dataset, model, seed and search), counted, "
                     "not run again." if copies else ""), ""]
    md += _scale_settings(rows, plan, info) + [""]
    for index, (shape, datasets) in enumerate(_shapes(info).items()):
        md += [f"### {shape}", ""]
        if len(datasets) > 1:
            path = _scale_figure(rows, shape, datasets, info, models, figdir, index)
            md += [f"![{os.path.basename(path)}](figures/{os.path.basename(path)})", ""]
        table = []
        for d in datasets:
            for i, line in enumerate(summary_rows(rows, d, models, study="scale")):
                table.append([f"{info[d]['train_rows']:,}" if i == 0 else "", *line])
        md += ["Mean ± std over seeds, rank in brackets; **bold**: the best model's lead over the runner-up is "
               f"significant (paired t-test over seeds, p < {SIGNIFICANCE}).", ""]
        md += markdown_table(["training rows", "Method", "seeds", *(TITLES[m] for m in PAPER_METRICS)], table) + [""]
        for d in datasets:
            verdict = mean_verdict(rows, d, models, study="scale")
            if verdict:
                md += [f"Where MEAN stands at {info[d]['train_rows']:,} training rows ({d}):", ""] + verdict + [""]
        fits = gini_fits(rows, datasets, info, models) if len(datasets) > 1 else []
        if fits:
            md += ["Straight line of test Gini against log10(training rows) per model, through every seed's "
                   f"point; measured from {info[datasets[0]]['train_rows']:,} to {info[datasets[-1]]['train_rows']:,} "
                   "training rows, and read only there (no extrapolation).", ""] + fits + [""]
    by_rows = defaultdict(list)
    for d, i in info.items():
        by_rows[i["train_rows"]].append(d)
    for train_rows, datasets in sorted(by_rows.items()):
        if len(datasets) < 2:
            continue
        names = {d: _shape_name(info[d]["informative"], info[d]["features"]) for d in datasets}
        md += [f"### The shapes side by side at {train_rows:,} training rows", "",
               "Columns: " + "; ".join(f"({k + 1}) {d}: {names[d]}" for k, d in enumerate(datasets)) + ".", ""]
        table = []
        for model in models:
            cells = [_fmt(*_stats(list(per_seed(rows, "scale", d, model, TARGET_LABEL, metric).values())))
                     for metric in PAPER_METRICS for d in datasets]
            if any(c != "n/a" for c in cells):
                table.append([model, *cells])
        md += markdown_table(["Method", *(f"{TITLES[m]} ({k + 1})" for m in PAPER_METRICS for k in range(len(datasets)))],
                             table) + [""]
    missing = _not_run(rows, plan, planned)
    if missing:
        md += ["Cells not run, with the reason:", ""] + missing + [""]
    return md
