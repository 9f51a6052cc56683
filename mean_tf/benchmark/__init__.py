"""`mean-tf benchmark`: the paper's experiments (Table 1, ablations, δ and n sweeps, targeting study) on public data,
and the scale study (quality against training rows on synthetic data):
the `plan` of cells, the resumable `run`, the `noise` of the eval criterion (the margin every search must beat),
and the `report` (docs/results.md).

May import: errors, contract, config, runtime, data, models, transform, evaluation, training.
"""
