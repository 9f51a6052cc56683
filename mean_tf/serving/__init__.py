"""Serving a trained model: `export` (the SavedModel TF Serving and the pipeline's Evaluator load: raw
tf.Examples in, calibrated money, payer probability, quantiles and bucket ranges out), `uncertainty` (those
quantiles and ranges), `scoring` (`mean-tf score`: today's customers to a table) and `client` (requests to
TF Serving over REST or gRPC).

May import: errors, contract, config, runtime, data, models, transform, evaluation, training.
"""
