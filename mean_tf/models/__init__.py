"""The models: MEAN's layers (`layers`: FeatureEncoder, MVFE, the distribution attention, DAM) and losses
(`losses`, eq. 8-17), the ZILN distribution (`ziln_distribution`), MEAN and every baseline (`mean`, `dnn_ziln`,
`odmn`, `mdan`, `optdist`, `classical`), what the data fixes for a model (`data_facts`), and the registry:
`build(name, config, facts)` for every model of the paper's Table 1 and the classical baselines.

May import: errors, contract, config.
"""
from mean_tf.models.registry import MODEL_NAMES, build, is_multi_horizon, spec  # noqa: F401
