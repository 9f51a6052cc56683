"""What the training data fixes for a model, kept apart from `MEANConfig`'s choices: `DataFacts`.

The Transform output and the train split decide these (`mean_tf.training.protocol.data_facts` fills them in);
a user never sets them. A model is built from both, `Model(config, facts)`, and saves both.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Tuple


@dataclasses.dataclass(frozen=True)
class DataFacts:
    # Vocabulary size (incl. OOV buckets) of each categorical input `cat__<name>` (Transform's vocabularies).
    categorical_vocab_sizes: Dict[str, int] = dataclasses.field(default_factory=dict)
    # Largest train label per label, in money (Transform's `<label>__max`): ZILN predictions cap
    # mu + sigma^2 / 2 at its log (mean_tf.models.ziln_distribution).
    label_max: Dict[str, float] = dataclasses.field(default_factory=dict)
    # ODMN's S x K bucket edges on the scaled label, per label, from quantiles of the positive train labels
    # (mean_tf.models.odmn.quantile_edges); empty = equal widths.
    odmn_edges: Dict[str, Tuple[float, ...]] = dataclasses.field(default_factory=dict)
    # Batch-norm momentum derived from the steps per epoch (used when `MEANConfig.bn_momentum` is None).
    bn_momentum: Optional[float] = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Optional[dict]) -> "DataFacts":
        values = dict(values or {})
        values["odmn_edges"] = {k: tuple(v) for k, v in values.get("odmn_edges", {}).items()}
        return cls(**values)
