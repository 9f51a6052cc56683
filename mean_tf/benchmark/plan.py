"""What the benchmark runs: a list of cells (study × dataset × model × labels × seed × config changes).

Studies: `tune` (one KerasTuner search per dataset and tunable model on cltv_365, eval split only, the
same trial budget for all), `table1` (every model with its tuned setting; cltv_365 with 5 seeds, the
other horizons with 2), `choice` (the BN and the two readings' switches for MEAN, chosen on the eval
split), `variant` (stop-gradients and label scaling), `delta` and `n` (MEAN's sensitivity curves),
`noise` (every neural model at its defaults with 3 seeds: the seed and epoch-to-epoch spread of the eval
criterion), `neural` (the same models under each of `NEURAL_VARIANTS`, 2 seeds, judged on the eval split), and,
only when named (`--only scale`: days of CPU), `scale` (quality against training rows on synthetic data
of growing size and a second shape whose signal is spread over many features; `ScaleSet`).
A cell's `key` identifies it in the results file, so a rerun skips cells that already finished. Cells whose
numbers depend on the tuning rule (the searches and every study that trains with their setting) carry the
protocol they ran under (`PROTOCOLS`), so a new rule reruns them instead of mixing with the old rows.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Dict, List, Sequence, Tuple

from mean_tf.contract import LABELS
from mean_tf.errors import MeanTFError
from mean_tf.models import registry

TABLE1_MODELS = ("dnn_ziln", "mtl_ziln", "odmn", "mdan", "optdist", "mtl_mean", "mean",
                 "two_stage_gbdt", "bgnbd_gg", "last_period")
ABLATION_MODELS = ("mean_no_kl", "mean_no_distill", "mvfe_only")
# Models with hyperparameters to tune (mean_tf.training.tuning); the ablations reuse MEAN's setting.
TUNED_MODELS = ("dnn_ziln", "mtl_ziln", "odmn", "mdan", "optdist", "mtl_mean", "mean", "two_stage_gbdt")
TUNE_LABEL = "cltv_365"
# Studies whose cells train with the tuned setting (the choice, noise and neural cells run at the defaults).
TUNED_STUDIES = ("table1", "variant", "delta", "n", "scale")
# The tuning protocols, newest last: cells of `tune` and `TUNED_STUDIES` record theirs (rows without one are 1).
PROTOCOLS = {
    1: "6 random-search trials, each scored by its best epoch's eval Gini; the best trial chosen",
    2: "12 trials, the first at the defaults, each scored by the mean of its best 3 epochs' eval Gini; the best "
       "chosen only if it beats the defaults by more than their seed spread (the noise study), else the defaults",
}
PROTOCOL = max(PROTOCOLS)
# The paper's ambiguous readings and the batch-norm choice, as MEAN config changes (chosen on eval).
# Every choice cell trains with the default hyperparameters, so "default" is their reference.
CHOICES: Dict[str, Dict] = {
    "default": {},
    "bn_reestimate": {"bn_reestimate": True, "bn_momentum": 0.99},
    "bn_keras_default": {"bn_momentum": 0.99},
    "gates_on_shared": {"mvfe_gate_input": "shared"},
    "teacher_log_probs": {"distill_teacher": "log_probs"},
}
# Stop-gradient choices of the alignment losses and the label scaling, as MEAN config changes.
VARIANTS: Dict[str, Dict] = {
    "kl_grad_to_dam": {"kl_stop_gradient_dam": False},
    "distill_grad_to_attention": {"distill_stop_gradient_attention": False},
    "no_stop_gradients": {"kl_stop_gradient_dam": False, "distill_stop_gradient_attention": False},
    "label_log1p": {"label_scaling": "log1p"},
}
# The neural models, each at the defaults, for the noise measurement and the variant study (eval split only).
# mean_ziln is MEAN's body under a ZILN head: an extension beyond the paper, never reported as MEAN.
NEURAL_MODELS = ("mean", "mtl_mean", "mean_ziln", "dnn_ziln", "mtl_ziln", "odmn", "mdan", "optdist")
# The noise study's models: every neural model and the tuned tree, whose searches' margins it measures.
NOISE_MODELS = NEURAL_MODELS + ("two_stage_gbdt",)
# What the tabular deep-learning literature says a network needs, as config changes of every neural model alike:
# numeric encodings (Gorishniy et al. 2022), regularisation, and the label reading.
NEURAL_VARIANTS: Dict[str, Dict] = {
    "ple": {"numeric_encoding": "ple"},
    "bins": {"numeric_encoding": "bins"},
    "dropout": {"dropout": 0.1},
    "weight_decay": {"weight_decay": 1e-4},
    "label_log1p": {"label_scaling": "log1p"},
}
DELTAS = (0.1, 0.5, 1.0, 2.0, 5.0)
NUM_DISTRIBUTIONS = (2, 3, 4, 5, 6, 7)
ORACLE_DATASETS = ("synthetic",)
# Studies that run only when `--only` names them.
OPT_IN_STUDIES = ("scale",)
# Peak memory of `materialize` on synthetic x 720 grows with the rows in every DirectRunner mode (measured at
# 40,000 and 100,000 rows): in memory 2.97 and 5.90 GiB, multi-processing (2 workers) 5.44 and 8.84 GiB; also
# with what TFX's Transform executor does differently: reading the analysed split again (3.33 and 7.32 GiB),
# TFT's deep-copy optimisation (3.56 and 7.25), and encoding with the static transformed schema (3.22 and 6.95).
TRANSFORM_TOO_LARGE = ("blocked: its Transform would need about 50 GiB with Beam's DirectRunner (peak memory grows "
                       "with the rows in every mode: 2.97 GiB at 40,000 rows, 5.90 GiB at 100,000), more than this "
                       "machine has; it runs once the Transform's memory is flat")


@dataclasses.dataclass(frozen=True)
class ScaleSet:
    """One synthetic dataset of the scale study (generator seed 0): its size, how many features carry the
    signal ((numeric, categorical); () = the generator's default, 12 + 2), the seeds its models run, whose
    search's setting they train with ("" = its own), the Beam arguments of its Transform, and why it cannot
    run yet ("" = it can; its cells stay planned and are not run). A set named like a Table 1 dataset is that
    dataset: its scale cells are copies of Table 1's cells where those ran."""

    dataset: str
    rows: int
    features: int = 720
    informative: Tuple[int, ...] = ()
    seeds: Tuple[int, ...] = (0, 1, 2)
    tuned_on: str = ""
    beam_pipeline_args: Tuple[str, ...] = ()
    blocked: str = ""

    def synthetic_spec(self):
        """The generator's `SyntheticSpec` of this set."""
        from mean_tf.data.synthetic import SyntheticSpec

        numeric, categorical = self.informative or (None, None)
        return SyntheticSpec(self.rows, self.features, seed=0, informative_numeric=numeric,
                             informative_categorical=categorical)


# The MEAN-body-with-ZILN-head extension joins the study when the registry has it.
SCALE_MODELS = ("mean", "dnn_ziln", "mdan", "optdist", "two_stage_gbdt") + tuple(
    m for m in ("mean_ziln",) if m in registry.MODEL_NAMES)
SPREAD_INFORMATIVE = (216, 24)  # 240 of 720 features, 10 % categorical like the features
# Each model is tuned once at 200,000 rows; 1,000,000 rows and the spread shape reuse that setting.
SCALE_SETS = (
    ScaleSet("synthetic", 40_000),  # Table 1's synthetic dataset
    ScaleSet("synthetic_200k", 200_000),  # Transform in memory: about 11 GiB (extrapolated)
    ScaleSet("synthetic_spread_200k", 200_000, informative=SPREAD_INFORMATIVE, tuned_on="synthetic_200k"),
    ScaleSet("synthetic_1m", 1_000_000, seeds=(0, 1), tuned_on="synthetic_200k", blocked=TRANSFORM_TOO_LARGE),
)


@dataclasses.dataclass(frozen=True)
class Cell:
    study: str  # table1 | variant | delta | n
    dataset: str
    model: str
    labels: Tuple[str, ...]
    seed: int
    overrides: Tuple[Tuple[str, object], ...] = ()
    variant: str = ""
    protocol: int = 1  # the tuning protocol (`PROTOCOLS`) of a search or a cell that trains with its setting

    @property
    def key(self) -> str:
        parts = [self.study, self.dataset, self.model, list(self.labels), self.seed,
                 [list(o) for o in self.overrides], self.variant]
        return json.dumps(parts + ([self.protocol] if self.protocol != 1 else []))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["overrides"] = dict(self.overrides)
        return d


@dataclasses.dataclass(frozen=True)
class Plan:
    """Which datasets, models, seeds and studies to run."""

    datasets: Tuple[str, ...] = ("online_retail_ii", "cdnow", "synthetic")
    models: Tuple[str, ...] = TABLE1_MODELS + ABLATION_MODELS
    seeds: Tuple[int, ...] = (0, 1, 2, 3, 4)  # Table 1 at cltv_365
    other_horizon_seeds: Tuple[int, ...] = (0, 1)  # Table 1 at the other horizons
    labels: Tuple[str, ...] = LABELS
    # Extra studies run on these datasets only (they multiply the cell count).
    study_datasets: Tuple[str, ...] = ("online_retail_ii", "cdnow")
    study_labels: Tuple[str, ...] = ("cltv_365",)
    study_seeds: Tuple[int, ...] = (0, 1, 2)
    choice_seeds: Tuple[int, ...] = (0, 1)
    sweep_seeds: Tuple[int, ...] = (0,)
    # The noise of the eval criterion at a fixed setting (seed and epoch-to-epoch spread), and the neural
    # variant study, on every dataset of the plan.
    noise_seeds: Tuple[int, ...] = (0, 1, 2)
    noise_models: Tuple[str, ...] = NOISE_MODELS
    neural_seeds: Tuple[int, ...] = (0, 1)
    neural_models: Tuple[str, ...] = NEURAL_MODELS
    neural_variants: Tuple[str, ...] = tuple(NEURAL_VARIANTS)
    studies: Tuple[str, ...] = ("choice", "tune", "table1", "variant", "delta", "n", "noise", "neural")
    tuned_models: Tuple[str, ...] = TUNED_MODELS
    choices: Tuple[str, ...] = tuple(CHOICES)
    variants: Tuple[str, ...] = tuple(VARIANTS)
    deltas: Tuple[float, ...] = DELTAS
    num_distributions: Tuple[int, ...] = NUM_DISTRIBUTIONS
    # Datasets a user built (`--datasets NAME:PATH`): NAME -> its labels; cells use those of `labels` it has.
    dataset_labels: Tuple[Tuple[str, Tuple[str, ...]], ...] = ()
    scale_sets: Tuple[ScaleSet, ...] = SCALE_SETS
    scale_models: Tuple[str, ...] = SCALE_MODELS
    protocol: int = PROTOCOL


def with_datasets(plan: Plan, labels_by_name: Dict[str, Sequence[str]]) -> Plan:
    """`plan` with more datasets (user-built, with their labels)."""
    names = tuple(n for n in labels_by_name if n not in plan.datasets)
    extra = tuple((n, tuple(labels)) for n, labels in labels_by_name.items())
    return dataclasses.replace(plan, datasets=plan.datasets + names, dataset_labels=plan.dataset_labels + extra)


def primary_label(labels: Sequence[str]) -> str:
    """The label a dataset's searches and summaries use: cltv_365, else its last (longest) label."""
    return TUNE_LABEL if TUNE_LABEL in labels else labels[-1]


def dataset_labels(plan: Plan, dataset: str) -> Tuple[str, ...]:
    """The labels `dataset` has: the four horizons for the datasets the benchmark builds."""
    return tuple(dict(plan.dataset_labels).get(dataset, LABELS))


def labels_of(plan: Plan, dataset: str) -> Tuple[str, ...]:
    """The labels cells on `dataset` use: the plan's that the dataset has, else its primary label."""
    own = dataset_labels(plan, dataset)
    return tuple(label for label in plan.labels if label in own) or (primary_label(own),)


def _fits(plan: Plan, dataset: str, model: str) -> bool:
    """A multi-horizon model needs all four labels."""
    return not registry.is_multi_horizon(model) or set(LABELS) <= set(dataset_labels(plan, dataset))


# The smoke run (CI): the tiny synthetic dataset, one seed, cltv_365, a model of each kind (single- and
# multi-horizon network, tree, probabilistic, heuristic) plus the oracle, and one cell of each study.
SMOKE = Plan(datasets=("synthetic",), models=("dnn_ziln", "mtl_mean", "mean", "two_stage_gbdt", "bgnbd_gg"),
             seeds=(0,), other_horizon_seeds=(0,), labels=("cltv_365",), study_datasets=("synthetic",),
             study_labels=("cltv_365",), study_seeds=(0,), choice_seeds=(0,), tuned_models=("mean", "two_stage_gbdt"),
             choices=("teacher_log_probs",), variants=("kl_grad_to_dam",), deltas=(0.5, 2.0), num_distributions=(3,),
             noise_seeds=(0, 1), noise_models=("mean", "two_stage_gbdt"), neural_seeds=(0,), neural_models=("mean",),
             neural_variants=("ple",),
             scale_models=("mean", "two_stage_gbdt"),
             scale_sets=(ScaleSet("synthetic_2k", 2_000, 40, seeds=(0,)),
                         ScaleSet("synthetic_4k", 4_000, 40, seeds=(0,), tuned_on="synthetic_2k"),
                         ScaleSet("synthetic_spread_2k", 2_000, 40, informative=(24, 3), seeds=(0,),
                                  tuned_on="synthetic_2k")))


def tuned_model(model: str, tuned_models: Sequence[str] = TUNED_MODELS) -> str:
    """Whose tuned setting a model trains with: its own, MEAN's for the ablations, none ("") otherwise."""
    owner = "mean" if model in ABLATION_MODELS else model
    return owner if owner in tuned_models else ""


def _model_cells(study, dataset, model, labels, seeds, overrides=(), variant="", other_seeds=None,
                 primary=TUNE_LABEL) -> List[Cell]:
    """Cells of one model: multi-horizon models once on all labels; `other_seeds` for the labels but `primary`."""
    if registry.is_multi_horizon(model):
        groups = [tuple(LABELS)]
    else:
        groups = [(label,) for label in labels]
    out = []
    for g in groups:
        for seed in (seeds if primary in g or other_seeds is None else other_seeds):
            out.append(Cell(study, dataset, model, g, seed, tuple(sorted(overrides)), variant))
    return out


def tune_cell(dataset: str, model: str, labels: Sequence[str] = LABELS, protocol: int = PROTOCOL) -> Cell:
    """The search whose setting `model` trains with on `dataset` (whose labels are `labels`): on the primary
    label (cltv_365), or all labels if multi-horizon."""
    labels = tuple(LABELS) if registry.is_multi_horizon(model) else (primary_label(labels),)
    return Cell("tune", dataset, model, labels, 0, protocol=protocol)


def noise_cells(dataset: str, model: str, labels: Sequence[str], seeds: Sequence[int]) -> List[Cell]:
    """`model` at its defaults on `dataset`'s primary label (all labels if multi-horizon), one cell per seed."""
    label = primary_label(labels)
    return _model_cells("noise", dataset, model, (label,), seeds, primary=label)


def with_opt_in(plan: Plan, only: Sequence[str]) -> Plan:
    """`plan` with the opt-in studies that `only` names (the others run only when named)."""
    named = tuple(s for s in OPT_IN_STUDIES if s in only and s not in plan.studies)
    return dataclasses.replace(plan, studies=plan.studies + named)


def scale_only(plan: Plan) -> Plan:
    """The scale study of `plan` alone (its report section's plan)."""
    return dataclasses.replace(plan, studies=("scale",))


def scale_set(plan: Plan, dataset: str) -> ScaleSet:
    found = [s for s in plan.scale_sets if s.dataset == dataset]
    if not found:
        raise MeanTFError(f"benchmark: {dataset!r} is not a dataset of the scale study "
                          f"({', '.join(s.dataset for s in plan.scale_sets)})")
    return found[0]


def blocked(plan: Plan, cell: Cell) -> str:
    """Why `cell` cannot run yet: its scale set's reason, "" for every other cell."""
    found = [s for s in plan.scale_sets if s.dataset == cell.dataset and s.blocked]
    return found[0].blocked if cell.study == "scale" and found else ""


def _scale_cells(plan: Plan) -> List[Cell]:
    """Searches on the sets tuned on themselves, then every set's models over its seeds, and its oracle."""
    out: List[Cell] = []
    for s in plan.scale_sets:
        if s.tuned_on:
            scale_set(plan, s.tuned_on)
        else:
            out += [tune_cell(s.dataset, owner, protocol=plan.protocol) for owner in dict.fromkeys(
                tuned_model(m, plan.tuned_models) for m in plan.scale_models) if owner]
    for s in plan.scale_sets:
        for model in plan.scale_models:
            out += _model_cells("scale", s.dataset, model, (TUNE_LABEL,), s.seeds)
        out.append(Cell("scale", s.dataset, "oracle", (TUNE_LABEL,), 0))
    return out


def cells(plan: Plan) -> List[Cell]:
    out: List[Cell] = []
    if "tune" in plan.studies:
        out += [tune_cell(dataset, model, dataset_labels(plan, dataset), plan.protocol) for dataset in plan.datasets
                for model in plan.models if model in plan.tuned_models and _fits(plan, dataset, model)]
    if "table1" in plan.studies:
        for dataset in plan.datasets:
            for model in (m for m in plan.models if _fits(plan, dataset, m)):
                out += _model_cells("table1", dataset, model, labels_of(plan, dataset), plan.seeds,
                                    other_seeds=plan.other_horizon_seeds,
                                    primary=primary_label(dataset_labels(plan, dataset)))
            if dataset in ORACLE_DATASETS:  # the true expected value: the ceiling of every column
                out.append(Cell("table1", dataset, "oracle", tuple(plan.labels), 0))
    for dataset in plan.datasets:
        label = primary_label(dataset_labels(plan, dataset))
        if "noise" in plan.studies:  # the defaults, 3 seeds: also the "default" row of the variant study
            for model in (m for m in plan.noise_models if _fits(plan, dataset, m)):
                out += noise_cells(dataset, model, dataset_labels(plan, dataset), plan.noise_seeds)
        for model in (m for m in plan.neural_models if _fits(plan, dataset, m)):
            if "neural" in plan.studies:
                for name in plan.neural_variants:
                    out += _model_cells("neural", dataset, model, (label,), plan.neural_seeds,
                                        NEURAL_VARIANTS[name].items(), name, primary=label)
    for dataset in (d for d in plan.datasets if d in plan.study_datasets):
        if "choice" in plan.studies and "mean" in plan.models:
            for name in plan.choices:
                out += _model_cells("choice", dataset, "mean", plan.study_labels, plan.choice_seeds,
                                    CHOICES[name].items(), name)
        if "variant" in plan.studies and "mean" in plan.models:
            for name in plan.variants:
                changes = VARIANTS[name]
                out += _model_cells("variant", dataset, "mean", plan.study_labels, plan.study_seeds, changes.items(), name)
        if "delta" in plan.studies and "mean" in plan.models:
            for delta in plan.deltas:  # every δ: Table 1's MEAN runs at its tuned δ, not necessarily the default 1
                out += _model_cells("delta", dataset, "mean", plan.study_labels, plan.sweep_seeds, [("huber_delta", delta)])
        if "n" in plan.studies and "mean" in plan.models:
            for n in plan.num_distributions:
                if n != 5:  # n = 5, the default (not tuned): Table 1's cells
                    out += _model_cells("n", dataset, "mean", plan.study_labels, plan.sweep_seeds, [("num_distributions", n)])
    if "scale" in plan.studies:
        out += _scale_cells(plan)
    out = [dataclasses.replace(c, protocol=plan.protocol) if c.study in TUNED_STUDIES else c for c in out]
    return sorted(dict((c.key, c) for c in out).values(), key=_priority)  # a search two studies share runs once


def _priority(cell: Cell):
    """Run order, so an interrupted run leaves the most useful results: the noise of the eval criterion (the
    margin every search must beat), the neural variants (they decide the defaults), MEAN's choices, then the
    searches (every later cell trains with their setting), then every Table 1 model once on every dataset for
    cltv_365 (the targeting horizon), then its other seeds (the spread that decides whether a lead counts), then
    the other horizons, then the studies, then the rest."""
    studies = ("tune", "choice", "table1", "variant", "delta", "n", "noise", "neural", "scale")
    datasets = ("online_retail_ii", "cdnow", "synthetic")
    if cell.study in ("noise", "neural"):
        tier = -4 if cell.study == "noise" else -3
    elif cell.study == "choice":
        tier = -2
    elif cell.study == "tune":
        tier = -1
    elif cell.study == "table1" and "cltv_365" in cell.labels:
        tier = 0 if cell.seed == 0 else 1
    elif cell.seed == 0:
        tier = 2 if cell.study == "table1" else 3
    else:
        tier = 4
    dataset = datasets.index(cell.dataset) if cell.dataset in datasets else len(datasets)
    # After the first pass, the large synthetic dataset waits for the two real ones.
    return (tier, tier != 0 and cell.dataset == "synthetic", cell.seed, studies.index(cell.study), dataset)


def narrow(all_cells: Sequence[Cell], only: Sequence[str] = (), models: Sequence[str] = (),
           seeds: Sequence[int] = (), datasets: Sequence[str] = ()) -> List[Cell]:
    """The --only/--models/--seeds/--datasets filters of the CLI."""
    return [c for c in all_cells
            if (not only or c.study in only) and (not models or c.model in models)
            and (not seeds or c.seed in seeds) and (not datasets or c.dataset in datasets)]
