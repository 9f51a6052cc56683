"""Training, one protocol for every model: `protocol` (datasets of transformed examples, `fit`, money
predictions), `selection` (early stopping and restore-best on an eval metric, the step budget, batch-norm
momentum), `data_facts` (what the training data fixes for a model), `calibration` (the money calibration
fitted on the eval split), `tuning` (the search spaces and KerasTuner's oracle), and `fit_predict` (fit one
model on a dataset and predict a split in money: `mean-tf train`, the benchmark, the notebooks).

May import: errors, contract, config, runtime, data, models, transform, evaluation.
"""
