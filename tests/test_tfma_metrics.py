"""The TFMA wrappers (mean_tf.tfx_modules.tfma_metrics) agree with the NumPy metrics, per slice and in a real EvalConfig."""
import math

import mean_tf  # noqa: F401  (Keras 2 before TensorFlow loads)
import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from apache_beam.testing import util as beam_util
from tensorflow_model_analysis.metrics import metric_specs, metric_util

from mean_tf import contract
from mean_tf.evaluation import metrics
from mean_tf.tfx_modules import tfma_metrics
from mean_tf.errors import MeanTFError

ALL_METRICS = contract.METRIC_NAMES + contract.CALIBRATION_NAMES

SCORES = {
    "percentile_mape": metrics.percentile_mape,
    "normalized_gini": metrics.normalized_gini,
    "spearman": metrics.spearman,
    "payer_auc": metrics.auc,
    "decile_mape": metrics.decile_mape,
    "top_auc": metrics.top_auc,
    "lift_at_10": lambda y, p: metrics.lift_at(y, p, 0.1),
    "value_ratio": metrics.value_ratio,
}


def zero_inflated(seed, n):
    """Money labels with ~70 % zeros and float32-exact rounded predictions full of ties."""
    rng = np.random.default_rng(seed)
    y = np.where(rng.random(n) < 0.7, 0.0, np.round(rng.lognormal(3, 1, n)))
    p = np.round(y * rng.uniform(0.3, 1.7, n) + rng.exponential(5, n))
    return y, p


def canonical(y, p):
    """The order the TFMA combiner scores a slice in."""
    order = tfma_metrics.scoring_order(y, p)
    return y[order], p[order]


def expected(y, p):
    return {name: score(*canonical(y, p)) for name, score in SCORES.items()}


def assert_close(got, want):
    if math.isnan(want):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(want, abs=1e-9)


def inputs(y, p):
    return [
        {"labels": np.array([label]), "predictions": np.array([prediction]), "example_weights": np.array([1.0])}
        for label, prediction in zip(y, p)
    ]


def combiner(name):
    (computation,) = tfma_metrics.METRIC_CLASSES[name]().computations()
    return computation.keys[0], computation.combiner


def test_classes_cover_every_metric_and_keep_their_names():
    assert tuple(tfma_metrics.METRIC_CLASSES) == ALL_METRICS
    for name, cls in tfma_metrics.METRIC_CLASSES.items():
        (computation,) = cls().computations()
        assert computation.keys[0].name == name


def test_beam_combine_per_slice_equals_numpy():
    y, p = zero_inflated(0, 240)
    group = np.random.default_rng(1).random(240) < 0.4
    slices = {(): np.ones(240, bool), (("group", "a"),): group, (("group", "b"),): ~group}
    want = {key: expected(y[mask], p[mask]) for key, mask in slices.items()}

    def with_slices(example):
        index, element = example
        return [(key, element) for key, mask in slices.items() if mask[index]]

    with beam.Pipeline() as pipeline:
        sliced = (
            pipeline
            | "Create" >> beam.Create(list(enumerate(inputs(y, p))))
            | "Standard" >> beam.Map(lambda item: (item[0], metric_util.to_standard_metric_inputs(item[1])))
            | "Slice" >> beam.FlatMap(with_slices)
        )
        for name in ALL_METRICS:
            key, metric_combiner = combiner(name)
            result = sliced | f"Combine_{name}" >> beam.CombinePerKey(metric_combiner)

            def check(got, key=key, name=name):
                try:
                    assert len(got) == len(slices)
                    for slice_key, values in got:
                        assert_close(values[key], want[slice_key][name])
                except AssertionError as err:
                    raise beam_util.BeamAssertException(f"{name}: {err}")

            beam_util.assert_that(result, check, label=f"Check_{name}")


def test_merged_accumulators_equal_numpy_and_ignore_arrival_order():
    y, p = zero_inflated(2, 300)
    elements = [metric_util.to_standard_metric_inputs(x) for x in inputs(y, p)]
    rng = np.random.default_rng(3)
    for name in ALL_METRICS:
        key, metric_combiner = combiner(name)
        outputs = []
        for chunks in (np.array_split(np.arange(300), 4), np.array_split(rng.permutation(300), 7)):
            accumulators = []
            for chunk in chunks:
                accumulator = metric_combiner.create_accumulator()
                for index in chunk:
                    accumulator = metric_combiner.add_input(accumulator, elements[index])
                accumulators.append(accumulator)
            outputs.append(metric_combiner.extract_output(metric_combiner.merge_accumulators(accumulators))[key])
        assert_close(outputs[0], expected(y, p)[name])
        assert_close(outputs[1], outputs[0])


def test_without_prediction_ties_equals_numpy_on_input_order():
    rng = np.random.default_rng(4)
    y = np.where(rng.random(200) < 0.6, 0.0, rng.gamma(1.0, 50.0, 200))
    p = y + rng.uniform(0, 30, 200)  # continuous: no ties
    for name in ALL_METRICS:
        key, metric_combiner = combiner(name)
        accumulator = metric_combiner.create_accumulator()
        for element in inputs(y, p):
            accumulator = metric_combiner.add_input(accumulator, metric_util.to_standard_metric_inputs(element))
        assert_close(metric_combiner.extract_output(accumulator)[key], SCORES[name](y, p))


def test_edge_slices_give_documented_values():
    for y, p in (([0.0, 0.0, 0.0], [1.0, 2.0, 3.0]), ([], [])):
        for name in ALL_METRICS:
            key, metric_combiner = combiner(name)
            accumulator = metric_combiner.create_accumulator()
            for element in inputs(y, p):
                accumulator = metric_combiner.add_input(accumulator, metric_util.to_standard_metric_inputs(element))
            assert math.isnan(metric_combiner.extract_output(accumulator)[key])


def test_weighted_metrics_are_refused():
    with pytest.raises(MeanTFError, match="unweighted"):
        tfma_metrics.NormalizedGini().computations(example_weighted=True)


def test_metric_configs_resolve_through_tfma():
    configs = tfma_metrics.metric_configs()
    assert [config.module for config in configs] == ["mean_tf.tfx_modules.tfma_metrics"] * len(ALL_METRICS)
    for config, name in zip(configs, ALL_METRICS):
        assert metric_specs.metric_instance(config).name == name
    gate = tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(lower_bound={"value": 0.2}))
    (gated,) = tfma_metrics.metric_configs(["normalized_gini"], {"normalized_gini": gate})
    assert gated.class_name == "NormalizedGini" and gated.threshold == gate
    with pytest.raises(MeanTFError, match="unknown CLTV metric"):
        tfma_metrics.metric_configs(["gini"])
    with pytest.raises(MeanTFError, match="threshold"):
        tfma_metrics.metric_configs(["spearman"], {"normalized_gini": gate})


def test_run_model_analysis_with_predictions_in_the_examples(tmp_path):
    """Model-agnostic TFMA: label and prediction are features, no model; real EvalConfig + module lookup."""
    y, p = zero_inflated(5, 120)
    country = np.where(np.random.default_rng(6).random(120) < 0.5, "de", "uk")
    data = str(tmp_path / "examples.tfrecord")
    with tf.io.TFRecordWriter(data) as writer:
        for label, prediction, value in zip(y, p, country):
            feature = {
                "cltv_365": tf.train.Feature(float_list=tf.train.FloatList(value=[label])),
                "prediction": tf.train.Feature(float_list=tf.train.FloatList(value=[prediction])),
                "country": tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    eval_config = tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(label_key="cltv_365", prediction_key="prediction")],
        metrics_specs=[tfma.MetricsSpec(metrics=tfma_metrics.metric_configs())],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=["country"])],
    )
    result = tfma.run_model_analysis(
        eval_shared_model=None, eval_config=eval_config, data_location=data, output_path=str(tmp_path / "out")
    )
    got = dict(result.slicing_metrics)
    assert set(got) == {(), (("country", "de"),), (("country", "uk"),)}
    for slice_key, values in got.items():
        mask = np.ones(120, bool) if not slice_key else country == slice_key[0][1]
        want = expected(y[mask], p[mask])
        for name in ALL_METRICS:
            assert_close(values[""][""][name]["doubleValue"], want[name])


def test_tied_predictions_are_scored_in_an_order_unrelated_to_their_labels():
    # A block of tied low predictions with mixed labels: sorted by label (the old order), the zeros and the
    # smallest labels fill one group, whose tiny mean inflates Percentile MAPE beyond every random order's.
    rng = np.random.default_rng(3)
    y = np.r_[np.where(rng.random(3000) < 0.3, 0.0, rng.lognormal(4, 1, 3000)),
              np.where(rng.random(300) < 0.5, 0.0, rng.uniform(0.01, 10, 300))]
    p = np.r_[y[:3000] * rng.uniform(0.5, 1.5, 3000) + 1.0, np.full(300, 2.5)]
    key, fn = combiner("percentile_mape")
    acc = fn.create_accumulator()
    for element in inputs(y, p):
        acc = fn.add_input(acc, metric_util.to_standard_metric_inputs(element))
    got = fn.extract_output(acc)[key]
    random_orders = [metrics.percentile_mape(y[i], p[i]) for i in (rng.permutation(y.size) for _ in range(20))]
    by_label = np.lexsort((p, y))
    assert min(random_orders) <= got <= max(random_orders)
    assert metrics.percentile_mape(y[by_label], p[by_label]) > 1.5 * max(random_orders)
    shuffled = rng.permutation(y.size)  # and it does not depend on the input order
    assert tfma_metrics.scoring_order(y, p).size == y.size
    np.testing.assert_array_equal(y[shuffled][tfma_metrics.scoring_order(y[shuffled], p[shuffled])],
                                  y[tfma_metrics.scoring_order(y, p)])
