"""The CLTV metrics of `mean_tf.evaluation.metrics` as TFMA 0.47 metrics, for the TFX Evaluator.

One `tfma.metrics.Metric` subclass per scalar, because a TFMA threshold (model blessing) is keyed
by the metric's own name and a multi-output metric cannot be gated. Each metric's Beam combiner
gathers every (label, prediction) pair of a slice and scores them in `extract_output` with the
NumPy function from `mean_tf.evaluation.metrics`: the ranking metrics are not decomposable into sums, so the
values are exact, never approximated.

Order: Beam guarantees no element order, but the stable sort of `mean_tf.evaluation.metrics` breaks ties in
the prediction by input order. So the combiner scores a slice's pairs in `scoring_order`: sorted by
(label, prediction), which every input order reaches, then shuffled with a fixed seed. The value is
deterministic, and tied predictions fall in an order unrelated to their labels, as in a data file.
(Sorting by label alone put every tie in ascending label order, a pessimistic extreme: the demo
model's 173 customers predicted 0 then scored a Percentile MAPE of 0.87, against 0.197 in every one
of 20 random orders.) It equals the NumPy function applied to the pairs in that order, and to the
pairs in any order when the predictions have no ties (Spearman and the AUCs never depend on it).

Scaling: each metric keeps its slice's pairs in memory, 16 bytes per example (two float64
arrays), once per metric, so 7 metrics on a 10 M-example slice hold about 1.1 GB in one worker.
That is fine for CLTV evaluation sets; a larger slice needs sampling before the Evaluator.

Example weights are not supported (the paper's metrics are unweighted): a MetricsSpec that asks
for weighted metrics raises MeanTFError; set `example_weights { unweighted: true }` there.
"""
from __future__ import annotations

import array
from typing import Callable, Dict, Iterable, List, Mapping, Optional

import apache_beam as beam
import numpy as np
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import metric_types, metric_util
from tensorflow_model_analysis.proto import config_pb2

from mean_tf.evaluation import metrics
from mean_tf.errors import MeanTFError

Score = Callable[[np.ndarray, np.ndarray], float]
MODULE = __name__


TIE_SEED = 0


def scoring_order(labels: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """The order a slice's pairs are scored in (module docstring): (label, prediction) ascending, then a
    permutation with seed `TIE_SEED`, the same for every input order of the same pairs."""
    canonical = np.lexsort((predictions, labels))
    return canonical[np.random.default_rng(TIE_SEED).permutation(canonical.size)]


class _PairsAccumulator:
    """Every (label, prediction) of a slice, as compact float64 arrays."""

    __slots__ = ("labels", "predictions")

    def __init__(self):
        self.labels = array.array("d")
        self.predictions = array.array("d")


class _GatherAndScoreCombiner(beam.CombineFn):
    """Gathers a slice's (label, prediction) pairs; `extract_output` scores them with one NumPy metric."""

    def __init__(
        self,
        key: metric_types.MetricKey,
        eval_config: Optional[config_pb2.EvalConfig],
        aggregation_type: Optional[metric_types.AggregationType],
        class_weights: Optional[Dict[int, float]],
        score: Score,
    ):
        self._key = key
        self._eval_config = eval_config
        self._aggregation_type = aggregation_type
        self._class_weights = class_weights
        self._score = score

    def create_accumulator(self) -> _PairsAccumulator:
        return _PairsAccumulator()

    def add_input(
        self, accumulator: _PairsAccumulator, element: metric_types.StandardMetricInputs
    ) -> _PairsAccumulator:
        for label, prediction, _ in metric_util.to_label_prediction_example_weight(
            element,
            eval_config=self._eval_config,
            model_name=self._key.model_name,
            output_name=self._key.output_name,
            sub_key=self._key.sub_key,
            aggregation_type=self._aggregation_type,
            class_weights=self._class_weights,
            example_weighted=False,
        ):
            accumulator.labels.extend(np.ravel(label).astype(np.float64))
            accumulator.predictions.extend(np.ravel(prediction).astype(np.float64))
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[_PairsAccumulator]) -> _PairsAccumulator:
        accumulators = iter(accumulators)
        result = next(accumulators)
        for accumulator in accumulators:
            result.labels.extend(accumulator.labels)
            result.predictions.extend(accumulator.predictions)
        return result

    def extract_output(self, accumulator: _PairsAccumulator) -> Dict[metric_types.MetricKey, float]:
        labels = np.frombuffer(accumulator.labels, dtype=np.float64)
        predictions = np.frombuffer(accumulator.predictions, dtype=np.float64)
        order = scoring_order(labels, predictions)
        return {self._key: self._score(labels[order], predictions[order])}


def _computations_fn(score: Score) -> Callable[..., metric_types.MetricComputations]:
    """TFMA's create-computations function for one NumPy metric, one computation per model/output."""

    def create_computations(
        name: str,
        eval_config: Optional[config_pb2.EvalConfig] = None,
        model_name: str = "",
        output_name: str = "",
        sub_key: Optional[metric_types.SubKey] = None,
        aggregation_type: Optional[metric_types.AggregationType] = None,
        class_weights: Optional[Dict[int, float]] = None,
        example_weighted: bool = False,
    ) -> metric_types.MetricComputations:
        if example_weighted:
            raise MeanTFError(
                f"TFMA metric {name} is unweighted; set example_weights {{ unweighted: true }} "
                "in its MetricsSpec (the eval config has an example_weight_key)"
            )
        key = metric_types.MetricKey(
            name=name, model_name=model_name, output_name=output_name, sub_key=sub_key
        )
        combiner = _GatherAndScoreCombiner(key, eval_config, aggregation_type, class_weights, score)
        return [metric_types.MetricComputation(keys=[key], preprocessors=None, combiner=combiner)]

    return metric_util.merge_per_key_computations(create_computations)


def _top_auc(y: np.ndarray, p: np.ndarray) -> float:
    return metrics.top_auc(y, p, metrics.TOP_SHARE)


def _lift_at_10(y: np.ndarray, p: np.ndarray) -> float:
    return metrics.lift_at(y, p, metrics.TOP_SHARE)


class NormalizedGini(metric_types.Metric):
    """`mean_tf.evaluation.metrics.normalized_gini` (higher is better)."""

    def __init__(self, name: str = "normalized_gini"):
        super().__init__(_computations_fn(metrics.normalized_gini), name=name)


class PercentileMape(metric_types.Metric):
    """`mean_tf.evaluation.metrics.percentile_mape` with 100 groups, the paper's key metric (lower is better)."""

    def __init__(self, name: str = "percentile_mape"):
        super().__init__(_computations_fn(metrics.percentile_mape), name=name)


class DecileMape(metric_types.Metric):
    """`mean_tf.evaluation.metrics.decile_mape` (lower is better)."""

    def __init__(self, name: str = "decile_mape"):
        super().__init__(_computations_fn(metrics.decile_mape), name=name)


class Spearman(metric_types.Metric):
    """`mean_tf.evaluation.metrics.spearman` (higher is better)."""

    def __init__(self, name: str = "spearman"):
        super().__init__(_computations_fn(metrics.spearman), name=name)


class PayerAuc(metric_types.Metric):
    """`mean_tf.evaluation.metrics.auc`: ROC AUC for the payer label y > 0 (higher is better)."""

    def __init__(self, name: str = "payer_auc"):
        super().__init__(_computations_fn(metrics.auc), name=name)


class TopAuc(metric_types.Metric):
    """`mean_tf.evaluation.metrics.top_auc` for the top 10 % of y (higher is better)."""

    def __init__(self, name: str = "top_auc"):
        super().__init__(_computations_fn(_top_auc), name=name)


class LiftAt10(metric_types.Metric):
    """`mean_tf.evaluation.metrics.lift_at` for the top 10 % by prediction (higher is better)."""

    def __init__(self, name: str = "lift_at_10"):
        super().__init__(_computations_fn(_lift_at_10), name=name)


class ValueRatio(metric_types.Metric):
    """`mean_tf.evaluation.metrics.value_ratio`: total predicted over total actual value (1 is calibrated)."""

    def __init__(self, name: str = "value_ratio"):
        super().__init__(_computations_fn(metrics.value_ratio), name=name)


# Metric name (as in `mean_tf.evaluation.metrics.evaluate`) -> TFMA class, in `evaluate`'s order.
METRIC_CLASSES: Dict[str, type] = {
    "percentile_mape": PercentileMape,
    "normalized_gini": NormalizedGini,
    "spearman": Spearman,
    "payer_auc": PayerAuc,
    "decile_mape": DecileMape,
    "top_auc": TopAuc,
    "lift_at_10": LiftAt10,
    "value_ratio": ValueRatio,
}


def metric_configs(
    names: Optional[Iterable[str]] = None,
    thresholds: Optional[Mapping[str, tfma.MetricThreshold]] = None,
) -> List[tfma.MetricConfig]:
    """`tfma.MetricConfig`s (class_name + module) for an EvalConfig's MetricsSpec.

    names: metric names of `mean_tf.evaluation.metrics.evaluate` (default: all of them);
    thresholds: optional `tfma.MetricThreshold` per metric name, for the Evaluator's blessing.
    """
    names = list(METRIC_CLASSES if names is None else names)
    thresholds = dict(thresholds or {})
    unknown = sorted(set(names) - set(METRIC_CLASSES))
    if unknown:
        raise MeanTFError(f"unknown CLTV metric {unknown[0]!r}; known: {', '.join(METRIC_CLASSES)}")
    unused = sorted(set(thresholds) - set(names))
    if unused:
        raise MeanTFError(f"threshold for CLTV metric {unused[0]!r}, which is not among the metrics {names}")
    configs = []
    for name in names:
        config = tfma.MetricConfig(class_name=METRIC_CLASSES[name].__name__, module=MODULE)
        if name in thresholds:
            config.threshold.CopyFrom(thresholds[name])
        configs.append(config)
    return configs
