"""The user code the TFX components call by name, side by side (the TFX taxi template's `models/`):
- Transform: `mean_tf.transform.preprocessing.preprocessing_fn` (it lives with the label transform that
  training and serving share; the pipeline names it from `pipeline.pipeline.PREPROCESSING_FN`);
- Tuner: `tuner.tuner_fn`;
- Trainer: `trainer.run_fn`;
- Evaluator: the TFMA metrics of `tfma_metrics`.

May import: errors, contract, config, runtime, data, models, transform, evaluation, training, serving.
"""
