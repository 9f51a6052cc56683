"""Subcommands of the `mean-tf` CLI, one module each, discovered by `mean_tf.cli` (the pipeline's own
`pipeline` and `demo` come from the `pipeline` package through entry points).

May import: errors, contract, config, runtime, data, models, transform, evaluation, training, serving, benchmark.
"""
