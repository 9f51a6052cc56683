"""The names that cross module boundaries, defined once: labels and horizons, splits, the transformed-feature
keys, the serving signature's input and outputs, the files written beside a model, and metric names.

The dataset builders, Transform, the models, training, serving, the pipeline and the reports all import
these from here.

May import: nothing.
"""
HORIZONS = (30, 90, 180, 365)  # days after the cutoff
LABELS = tuple(f"cltv_{h}" for h in HORIZONS)  # money spent in the next HORIZONS days

SPLITS = ("train", "eval", "test")  # a training dataset's splits
SCORE_SPLIT = "score"  # the one split of a scoring dataset (features at a date, no labels)

# Transform output (docs/design.md, "Transformed features").
NUMERIC_KEY = "numeric"  # float32 [B, D]: every numeric feature, standardized
CATEGORICAL_PREFIX = "cat__"  # cat__<name>: int64 [B] vocabulary id
SCALED_SUFFIX = "__scaled"  # <label>__scaled: the scaled, clipped label
BUCKET_SUFFIX = "__bucket"  # <label>__bucket: the label's value bucket (0 = zero)
SCALE_SUFFIX = "__scale"  # <label>__scale: the divisor of label_scaling="scale"
MAX_SUFFIX = "__max"  # <label>__max: the largest train label (a Transform constant)
VOCAB_PREFIX = "vocab__"  # vocabulary files of the Transform graph

# The servable SavedModel: `serving_default(examples)` and its outputs (mean_tf.serving.export).
SERVING_INPUT = "examples"
SERVING_SIGNATURE = "serving_default"
CLTV_OUTPUT = "cltv"
UNCALIBRATED_OUTPUT = "cltv_uncalibrated"
PAYER_OUTPUT = "p_payer"
BUCKET_PROBS_OUTPUT = "bucket_probs"
BUCKET_LOWER_OUTPUT = "bucket_lower"
BUCKET_UPPER_OUTPUT = "bucket_upper"
OUT_OF_RANGE_OUTPUT = "inputs_out_of_range"  # [B]: how many numeric features were clipped to their bound
OUT_OF_RANGE_SIGNATURE = "out_of_range_features"  # a second signature: BEYOND_OUTPUT [B, F], which were clipped
BEYOND_OUTPUT = "beyond"
# Written beside the SavedModel (TF Serving ignores assets.extra): label, labels, raw features, calibration.
MODEL_INFO_FILE = "assets.extra/mean_tf.json"
# Written into the Trainer's model-run folder.
FIT_SUMMARY_FILE = "fit_summary.json"
CALIBRATION_FILE = "calibration.json"

# The keys of `mean_tf.evaluation.metrics.evaluate`, paper Table 1 order first (Percentile MAPE, GINI,
# Spearman, AUC), then extras; and the calibration of the money value, reported beside them.
METRIC_NAMES = ("percentile_mape", "normalized_gini", "spearman", "payer_auc", "decile_mape", "top_auc", "lift_at_10")
CALIBRATION_NAMES = ("value_ratio",)

VERBOSE_ENV = "MEAN_TF_VERBOSE"  # set by `mean-tf --verbose`: Keras' line per epoch in the Trainer
