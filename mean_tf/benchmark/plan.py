"""What the benchmark runs: a list of cells (study × dataset × model × labels × seed × config changes).

A cell's `key` identifies it in the results file, so a rerun skips cells that already finished.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Dict, List, Sequence, Tuple

from mean_tf.config import ALL_LABELS
from mean_tf.models import registry

TABLE1_MODELS = ("dnn_ziln", "mtl_ziln", "odmn", "mdan", "optdist", "mtl_mean", "mean",
                 "two_stage_gbdt", "bgnbd_gg", "last_period")
ABLATION_MODELS = ("mean_no_kl", "mean_no_distill", "mvfe_only")
# Stop-gradient choices of the alignment losses and the label scaling, as MEAN config changes.
VARIANTS: Dict[str, Dict] = {
    "kl_grad_to_dam": {"kl_stop_gradient_dam": False},
    "distill_grad_to_attention": {"distill_stop_gradient_attention": False},
    "no_stop_gradients": {"kl_stop_gradient_dam": False, "distill_stop_gradient_attention": False},
    "label_log1p": {"label_scaling": "log1p"},
}
DELTAS = (0.1, 0.5, 1.0, 2.0, 5.0)
NUM_DISTRIBUTIONS = (2, 3, 4, 5, 6, 7)
ORACLE_DATASETS = ("synthetic",)


@dataclasses.dataclass(frozen=True)
class Cell:
    study: str  # table1 | variant | delta | n
    dataset: str
    model: str
    labels: Tuple[str, ...]
    seed: int
    overrides: Tuple[Tuple[str, object], ...] = ()
    variant: str = ""

    @property
    def key(self) -> str:
        return json.dumps([self.study, self.dataset, self.model, list(self.labels), self.seed,
                           [list(o) for o in self.overrides], self.variant])

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["overrides"] = dict(self.overrides)
        return d


@dataclasses.dataclass(frozen=True)
class Plan:
    """Which datasets, models, seeds and studies to run."""

    datasets: Tuple[str, ...] = ("online_retail_ii", "cdnow", "synthetic")
    models: Tuple[str, ...] = TABLE1_MODELS + ABLATION_MODELS
    seeds: Tuple[int, ...] = (0, 1, 2)
    labels: Tuple[str, ...] = ALL_LABELS
    # Extra studies run on these datasets only (they multiply the cell count).
    study_datasets: Tuple[str, ...] = ("online_retail_ii",)
    # The studies' horizons: the shortest and the longest (all four multiply the cost by two).
    study_labels: Tuple[str, ...] = ("cltv_30", "cltv_365")
    study_seeds: Tuple[int, ...] = (0, 1, 2)
    sweep_seeds: Tuple[int, ...] = (0,)
    studies: Tuple[str, ...] = ("table1", "variant", "delta", "n")
    variants: Tuple[str, ...] = tuple(VARIANTS)
    deltas: Tuple[float, ...] = DELTAS
    num_distributions: Tuple[int, ...] = NUM_DISTRIBUTIONS


# The smoke run (CI): the tiny synthetic dataset, one seed, cltv_365, a model of each kind (single- and
# multi-horizon network, tree, probabilistic, heuristic) plus the oracle, and one cell of each study.
SMOKE = Plan(datasets=("synthetic",), models=("dnn_ziln", "mtl_mean", "mean", "two_stage_gbdt", "bgnbd_gg"),
             seeds=(0,), labels=("cltv_365",), study_datasets=("synthetic",), study_labels=("cltv_365",),
             study_seeds=(0,), variants=("kl_grad_to_dam",), deltas=(0.5,), num_distributions=(3,))


def _model_cells(study, dataset, model, labels, seeds, overrides=(), variant="") -> List[Cell]:
    if registry.is_multi_horizon(model):
        groups = [tuple(ALL_LABELS)]
    else:
        groups = [(label,) for label in labels]
    return [Cell(study, dataset, model, g, seed, tuple(sorted(overrides)), variant) for g in groups for seed in seeds]


def cells(plan: Plan) -> List[Cell]:
    out: List[Cell] = []
    if "table1" in plan.studies:
        for dataset in plan.datasets:
            for model in plan.models:
                out += _model_cells("table1", dataset, model, plan.labels, plan.seeds)
            if dataset in ORACLE_DATASETS:  # the true expected value: the ceiling of every column
                out.append(Cell("table1", dataset, "oracle", tuple(plan.labels), 0))
    for dataset in (d for d in plan.datasets if d in plan.study_datasets):
        if "variant" in plan.studies and "mean" in plan.models:
            for name in plan.variants:
                changes = VARIANTS[name]
                out += _model_cells("variant", dataset, "mean", plan.study_labels, plan.study_seeds, changes.items(), name)
        if "delta" in plan.studies and "mean" in plan.models:
            for delta in plan.deltas:
                if delta != 1.0:  # δ = 1 is the default: Table 1's cells
                    out += _model_cells("delta", dataset, "mean", plan.study_labels, plan.sweep_seeds, [("huber_delta", delta)])
        if "n" in plan.studies and "mean" in plan.models:
            for n in plan.num_distributions:
                if n != 5:
                    out += _model_cells("n", dataset, "mean", plan.study_labels, plan.sweep_seeds, [("num_distributions", n)])
    return sorted(out, key=_priority)


def _priority(cell: Cell):
    """Run order, so an interrupted run leaves the most useful results: every Table 1 model once on
    every dataset for cltv_365 (the targeting horizon) first, then its other seeds (the spread that
    decides whether a lead counts), then the other horizons, then the studies, then the rest."""
    studies = ("table1", "variant", "delta", "n")
    datasets = ("online_retail_ii", "cdnow", "synthetic")
    if cell.study == "table1" and "cltv_365" in cell.labels:
        tier = 0 if cell.seed == 0 else 1
    elif cell.seed == 0:
        tier = 2 if cell.study == "table1" else 3
    else:
        tier = 4
    dataset = datasets.index(cell.dataset) if cell.dataset in datasets else len(datasets)
    # After the first pass, the large synthetic dataset waits for the two real ones.
    return (tier, tier > 0 and cell.dataset == "synthetic", cell.seed, studies.index(cell.study), dataset)


def narrow(all_cells: Sequence[Cell], only: Sequence[str] = (), models: Sequence[str] = (),
           seeds: Sequence[int] = (), datasets: Sequence[str] = ()) -> List[Cell]:
    """The --only/--models/--seeds/--datasets filters of the CLI."""
    return [c for c in all_cells
            if (not only or c.study in only) and (not models or c.model in models)
            and (not seeds or c.seed in seeds) and (not datasets or c.dataset in datasets)]
