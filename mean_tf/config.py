"""The one configuration of every model in mean-tf: `MEANConfig`, with the paper's settings as defaults.

Baselines read the same dataclass (their few extra knobs are prefixed with the model's name), so the
Trainer, the CLI, the benchmark and the notebooks pass a single config around. Section 4.1 of the
paper gives: shared layer [512, 256], DAM MLP [256, 128, 64], one dense + batch-norm layer per
expert, M = 5 experts, n = 5 distributions (zero is its own), Adam 1e-3, batch 1024, early
stopping, labels scaled and clipped to [0, 20], Huber delta = 1, gamma = 1, tau = 2. What the training data
fixes (vocabulary sizes, label maxima, ODMN's edges) is not configured: `mean_tf.models.data_facts.DataFacts`.

May import: errors, contract.
"""
from __future__ import annotations

import dataclasses
import json
import math
import numbers
from typing import Optional, Tuple

from mean_tf.errors import MeanTFError

LABEL_SCALINGS = ("log1p", "scale")
NUMERIC_ENCODINGS = ("zscore", "ple", "bins")
CLTV_HEADS = ("huber", "ziln")
GATE_INPUTS = ("x_u", "shared")
DISTILL_TEACHERS = ("probs", "log_probs")
LOSS_SELECTIONS = ("val_loss", "val_prediction_loss")
# Money calibration shapes (mean_tf.training.calibration) and the choices of `calibration`.
CALIBRATION_SHAPES = ("isotonic", "scale")
CALIBRATIONS = ("auto",) + CALIBRATION_SHAPES + ("none",)
OPTIONAL_FIELDS = ("bucket_boundaries", "bn_momentum")


def selection_metrics() -> Tuple[str, ...]:
    """Valid `selection_metric` values: the metrics of `mean_tf.evaluation.metrics` and the two eval losses."""
    from mean_tf.contract import METRIC_NAMES

    return tuple(METRIC_NAMES) + LOSS_SELECTIONS


@dataclasses.dataclass
class MEANConfig:
    """Every hyperparameter of MEAN (and of the baselines), serialisable to JSON/YAML."""

    # Targets: one label for single-task models, all four for the multi-horizon ones.
    labels: Tuple[str, ...] = ("cltv_365",)

    # Encoder (FeatureEncoder): embedding width of each categorical feature.
    embedding_dim: int = 8
    # Numeric inputs (Transform and FeatureEncoder), for every neural model: "zscore" (each feature standardized;
    # money and large counts after a signed log1p) or, from per-feature quantile bins computed by Transform,
    # "ple" (piecewise-linear encoding) or "bins" (one embedding of width `embedding_dim` per feature and bin),
    # Gorishniy et al., NeurIPS 2022. `numeric_bins`: quantile bins per feature.
    numeric_encoding: str = "zscore"
    numeric_bins: int = 8
    # Regularisation of every neural model: dropout after each hidden layer, and AdamW's decoupled weight decay.
    dropout: float = 0.0
    weight_decay: float = 0.0

    # Shared layer (sec. 4.1): two-layer ReLU MLP.
    shared_units: Tuple[int, ...] = (512, 256)
    # MVFE (eq. 2-3): M view experts, each one dense layer + batch normalisation, and one gate per distribution.
    num_experts: int = 5
    expert_units: int = 128
    # n sub-distributions (zero is its own); also the number of attention tokens and DAM classes.
    num_distributions: int = 5
    # Distribution attention (eq. 4-5): width of g'_t.
    attention_units: int = 64
    # DAM (eq. 9): W_s projection, then the MLP [256, 128, 64] and a final layer of n logits.
    dam_shared_units: int = 256
    dam_units: Tuple[int, ...] = (256, 128, 64)

    # Loss (eq. 8, 13-17).
    huber_delta: float = 1.0
    beta: float = 1.0
    gamma: float = 1.0
    tau: float = 2.0
    xi: float = 1e-8
    # Readings of the paper where it is ambiguous (literal reading first; docs/design.md, "Switches"):
    # the gates G_i of eq. 3 read x_u ("x_u", as eq. 3 writes) or the shared layer's output ("shared");
    mvfe_gate_input: str = "x_u"
    # the soft teacher of eq. 14 is sigma(theta_hat; tau) on the probability vector ("probs", as written)
    # or sigma(log theta_hat; tau), a tempered copy of theta_hat ("log_probs").
    distill_teacher: str = "probs"
    # Ablation switches (Tables 2 and 3).
    use_kl: bool = True
    use_soft_distillation: bool = True
    use_dam: bool = True
    # MEAN's CLTV head: "huber", the paper's (eq. 7-8: FC(e) on the scaled label under a Huber loss), or "ziln",
    # an extension beyond the paper: the same body (MVFE, attention, DAM, alignment) under a ZILN head on money.
    cltv_head: str = "huber"
    # Stop-gradient choices of the alignment losses (literal reading of the paper by default):
    # L_kl guides the attention only (DAM's b_hat is a fixed target) ...
    kl_stop_gradient_dam: bool = True
    # ... and the soft L_dis term teaches DAM only (attention's theta_hat is a fixed teacher).
    distill_stop_gradient_attention: bool = True

    # Labels: scaled and clipped to [0, label_clip] (sec. 4.1). "scale" (default; the literal reading of "we
    # scaled the labels") divides by the mean positive train label, computed in Transform; "log1p" is the
    # alternative. Chosen on the eval split (docs/design.md, "Label scaling").
    label_scaling: str = "scale"
    label_clip: float = 20.0
    # Bucket boundaries on the scaled positive label; None = quantiles computed by Transform.
    bucket_boundaries: Optional[Tuple[float, ...]] = None

    # Training (sec. 4.1) and the protocol of `mean_tf.training.protocol` (docs/design.md, "Training protocol").
    learning_rate: float = 1e-3
    batch_size: int = 1024
    # Model selection: early stopping and the restored epoch follow this eval-split criterion, a metric of
    # `mean_tf.evaluation.metrics.evaluate` on the money prediction (mean over the model's labels) or a logged eval
    # loss ("val_loss" = the total loss; "val_prediction_loss" = the model's own prediction term).
    selection_metric: str = "normalized_gini"
    # Stop when selection has not improved for `patience` epochs, or after `max_steps` optimizer steps
    # (the budget), or after `epochs` epochs (a safety cap only).
    patience: int = 10
    max_steps: int = 250_000
    epochs: int = 1000
    # Halve the learning rate when selection stalls for this many epochs (0 = off).
    reduce_lr_patience: int = 0
    # Batch normalisation of the MVFE experts: momentum of the running statistics. None = derived from the
    # steps per epoch (training records it in `DataFacts.bn_momentum`), min(0.99, 0.01 ** (1 / steps)), so that the starting statistics weigh at most 1 %
    # after one epoch (Keras' 0.99 needs ~460 steps; small datasets have 17-28 per epoch).
    bn_momentum: Optional[float] = None
    # Alternatively re-estimate the running statistics on training batches before each evaluation.
    bn_reestimate: bool = False
    # Money calibration fitted on the eval split after training and exported in the serving graph
    # (mean_tf.training.calibration; strictly increasing, so rankings are unchanged): "auto" (the shape, isotonic or
    # scale, with the lower out-of-fold Percentile MAPE on the eval split), "isotonic", "scale" or "none".
    calibration: str = "auto"
    seed: int = 0

    # Baselines' own knobs.
    ziln_units: Tuple[int, ...] = (512, 256, 128)
    odmn_sub_distributions: int = 4
    odmn_buckets: int = 5
    # ODMN, MDAN and OptDist share the `shared_units` bottom; these are their per-horizon towers,
    # per-channel towers and per-candidate / selector networks.
    odmn_tower_units: Tuple[int, ...] = (128, 64)
    mdan_channels: int = 4
    mdan_channel_units: Tuple[int, ...] = (128, 64)
    mdan_ranksim_weight: float = 1.0
    optdist_candidates: int = 3
    optdist_units: Tuple[int, ...] = (128, 64)
    optdist_gumbel_temperature: float = 1.0
    optdist_alignment_weight: float = 1.0
    gbdt_max_iter: int = 200
    gbdt_learning_rate: float = 0.1
    gbdt_max_leaf_nodes: int = 31
    gbdt_l2: float = 0.0

    # Reproducibility (mean_tf.runtime.determinism): True makes TensorFlow ops deterministic in training.fit, so
    # the same seed gives the same metrics on the same machine and thread count (turn off on GPU for speed).
    deterministic: bool = True

    def __post_init__(self):
        self._check_types()
        for name in ("labels", "shared_units", "dam_units", "ziln_units", "odmn_tower_units", "mdan_channel_units",
                     "optdist_units"):
            setattr(self, name, tuple(getattr(self, name)))
        if self.bucket_boundaries is not None:
            self.bucket_boundaries = tuple(float(b) for b in self.bucket_boundaries)
        self.validate()

    def _check_types(self) -> None:
        """Raise MeanTFError naming the first value whose type does not match the field's default."""
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
            if value is None and field.name in OPTIONAL_FIELDS:
                continue
            if field.name == "bn_momentum":
                default = 0.0
            if isinstance(default, bool):
                ok, what = isinstance(value, bool), "true or false"
            elif isinstance(default, int):
                ok, what = isinstance(value, numbers.Integral) and not isinstance(value, bool), "an integer"
            elif isinstance(default, float):
                ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
                what = "a finite number"
            elif isinstance(default, str):
                ok, what = isinstance(value, str), "a string"
            elif isinstance(default, dict):
                ok, what = isinstance(value, dict), "a mapping"
            else:  # tuples (and bucket_boundaries): a list of numbers, or of names for `labels`
                item = str if field.name == "labels" else numbers.Real
                ok = isinstance(value, (list, tuple)) and all(
                    isinstance(x, item) and not isinstance(x, bool) for x in value)
                what = "a list of label names" if item is str else "a list of numbers"
            if not ok:
                raise MeanTFError(f"config: {field.name}={value!r} must be {what}")

    def validate(self) -> None:
        """Raise MeanTFError naming the first out-of-range value."""
        checks = [
            ("num_distributions", self.num_distributions >= 2, "must be at least 2"),
            ("num_experts", self.num_experts >= 1, "must be at least 1"),
            ("tau", self.tau > 0, "must be > 0"),
            ("huber_delta", self.huber_delta > 0, "must be > 0"),
            ("xi", self.xi >= 0, "must be >= 0"),
            ("beta", self.beta >= 0, "must be >= 0"),
            ("gamma", self.gamma >= 0, "must be >= 0"),
            ("learning_rate", self.learning_rate > 0, "must be > 0"),
            ("batch_size", self.batch_size >= 1, "must be at least 1"),
            ("epochs", self.epochs >= 1, "must be at least 1"),
            ("patience", self.patience >= 0, "must be >= 0"),
            ("max_steps", self.max_steps >= 1, "must be at least 1"),
            ("reduce_lr_patience", self.reduce_lr_patience >= 0, "must be >= 0"),
            ("bn_momentum", self.bn_momentum is None or 0.0 <= self.bn_momentum < 1.0, "must be in [0, 1) or null"),
            ("selection_metric", self.selection_metric in selection_metrics(),
             f"must be one of {selection_metrics()}"),
            ("mvfe_gate_input", self.mvfe_gate_input in GATE_INPUTS, f"must be one of {GATE_INPUTS}"),
            ("distill_teacher", self.distill_teacher in DISTILL_TEACHERS, f"must be one of {DISTILL_TEACHERS}"),
            ("calibration", self.calibration in CALIBRATIONS, f"must be one of {CALIBRATIONS}"),
            ("label_clip", self.label_clip > 0, "must be > 0"),
            ("label_scaling", self.label_scaling in LABEL_SCALINGS, f"must be one of {LABEL_SCALINGS}"),
            ("numeric_encoding", self.numeric_encoding in NUMERIC_ENCODINGS, f"must be one of {NUMERIC_ENCODINGS}"),
            ("numeric_bins", self.numeric_bins >= 2, "must be at least 2"),
            ("dropout", 0.0 <= self.dropout < 1.0, "must be in [0, 1)"),
            ("weight_decay", self.weight_decay >= 0, "must be >= 0"),
            ("cltv_head", self.cltv_head in CLTV_HEADS, f"must be one of {CLTV_HEADS}"),
            ("labels", len(self.labels) >= 1, "must name at least one label"),
            ("optdist_candidates", self.optdist_candidates >= 2, "must be at least 2"),
            ("optdist_gumbel_temperature", self.optdist_gumbel_temperature > 0, "must be > 0"),
            ("odmn_sub_distributions", self.odmn_sub_distributions >= 1, "must be at least 1"),
            ("odmn_buckets", self.odmn_buckets >= 1, "must be at least 1"),
            ("mdan_channels", self.mdan_channels >= 1, "must be at least 1"),
            ("mdan_ranksim_weight", self.mdan_ranksim_weight >= 0, "must be >= 0"),
            ("optdist_alignment_weight", self.optdist_alignment_weight >= 0, "must be >= 0"),
            ("gbdt_max_iter", self.gbdt_max_iter >= 1, "must be at least 1"),
            ("gbdt_learning_rate", self.gbdt_learning_rate > 0, "must be > 0"),
            ("gbdt_max_leaf_nodes", self.gbdt_max_leaf_nodes >= 2, "must be at least 2"),
            ("gbdt_l2", self.gbdt_l2 >= 0, "must be >= 0"),
        ]
        for name in ("ziln_units", "odmn_tower_units", "mdan_channel_units", "optdist_units"):
            units = getattr(self, name)
            checks.append((name, len(units) >= 1 and all(int(u) >= 1 for u in units), "must be positive layer widths"))
        for name, ok, why in checks:
            if not ok:
                raise MeanTFError(f"config: {name}={getattr(self, name)!r} {why}")
        if self.bucket_boundaries is not None:
            b = self.bucket_boundaries
            if len(b) != self.num_distributions - 2 or any(x >= y for x, y in zip(b, b[1:])):
                raise MeanTFError(
                    f"config: bucket_boundaries={b!r} must be {self.num_distributions - 2} increasing values "
                    f"(n - 2 cut points split positive labels into n - 1 buckets)"
                )

    # --- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict) -> "MEANConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise MeanTFError(f"config: unknown key {unknown[0]!r} (known keys: {', '.join(sorted(known))})")
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> "MEANConfig":
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_file(cls, path: str) -> "MEANConfig":
        """Read a .json or .yaml/.yml file."""
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise MeanTFError(f"config: cannot read {path}: {e.strerror}") from None
        is_yaml = path.endswith((".yaml", ".yml"))
        try:
            if is_yaml:
                import yaml

                values = yaml.safe_load(text) or {}
            else:
                values = json.loads(text)
        except Exception as e:  # json.JSONDecodeError, yaml.YAMLError
            raise MeanTFError(f"config: {path} is not valid {'YAML' if is_yaml else 'JSON'}: "
                              f"{str(e).splitlines()[0]}") from None
        if not isinstance(values, dict):
            raise MeanTFError(f"config: {path} must hold a mapping of keys to values")
        return cls.from_dict(values)

    def replace(self, **changes) -> "MEANConfig":
        return MEANConfig.from_dict({**self.to_dict(), **changes})
