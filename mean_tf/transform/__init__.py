"""The Transform: `preprocessing.preprocessing_fn` (the TFT graph the TFX Transform runs: numeric scaling,
vocabularies, label scaling, clipping to [0, label_clip] and bucketing), the money inverse of the labels,
and the same graph run outside TFX (`preprocessing.materialize`); `vocabulary`: every categorical feature's
vocabulary in one Beam analyzer.

May import: errors, contract, config, runtime, data.
"""
