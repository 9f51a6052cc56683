"""Subcommands of the `mean-tf` CLI, one module each, discovered by `mean_tf.cli`."""
