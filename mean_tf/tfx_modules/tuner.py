"""TFX Tuner user code: `tuner_fn` searches the Trainer's model on the eval split with the search space, trial
score and choosing rule of `mean_tf.training.tuning`, each trial one run of the training protocol."""
from __future__ import annotations

import os

from tfx.components.tuner.component import TunerFnResult

from mean_tf.config import MEANConfig
from mean_tf.training import protocol, tuning


def tuner_fn(fn_args):
    """TFX Tuner entry point: a tuner that searches the Trainer's model on the eval split."""
    custom = fn_args.custom_config or {}
    model_name, config = custom["model_name"], MEANConfig.from_dict(custom["config"])

    def trial(tuned: MEANConfig) -> float:
        result = protocol.fit(model_name, tuned, fn_args.transform_graph_path, fn_args.train_files,
                              fn_args.eval_files, verbose=0)
        return tuning.fit_score(result.history, tuned.selection_metric)

    tuner = tuning.make_tuner(model_name, trial, config, os.path.join(fn_args.working_dir, "tuner"), model_name,
                              max_trials=int(custom.get("tuner_trials", tuning.TRIALS)), seed=config.seed,
                              margin=float(custom.get("tuner_margin", 0.0)))
    return TunerFnResult(tuner=tuner, fit_kwargs={})
