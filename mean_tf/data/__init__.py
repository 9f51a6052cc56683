"""Dataset builders and dataset files of mean-tf (see docs/design.md, "Dataset files").

- `snapshots_from_transactions(df, customer_col, time_col, amount_col, cutoffs, ...)`: a transaction log ->
  customer x cutoff snapshot table (features strictly before the cutoff, labels cltv_30/90/180/365 after);
- `online_retail.build`, `cdnow.build`, `synthetic.build`: the three datasets (`mean-tf data ...`);
  `kaggle_shoppers.build`, `criteo_ssc.build`: the public benchmarks, from a file the user downloaded; and
  `table.build`: a user's feature table, CSV or Parquet (`mean-tf data table`);
- `write_dataset(frame, out, manifest)`: any snapshot table -> dataset folder (gzipped TFRecords + manifest);
- `read_manifest(path)`, `read_split(manifest, split)`: read a dataset back (pandas DataFrame).

Modules: `manifest` (dataset folders), `examples` (the tf.Example encoder and TFRecord writer), `splits`,
`transactions`, `transaction_file`, `table`, and one builder per dataset. Importing this package does not
import TensorFlow (only `read_split` and `Manifest.feature_spec` do).

May import: errors, contract, runtime.
"""
from mean_tf.data.manifest import (  # noqa: F401
    FORMAT,
    ID_COLUMNS,
    SPLITS,
    Manifest,
    read_manifest,
    read_split,
    validate_manifest,
    write_dataset,
    write_manifest,
)
from mean_tf.data.splits import assign_splits, customer_split  # noqa: F401
from mean_tf.data.transactions import Snapshots, snapshots_from_transactions  # noqa: F401
from mean_tf.contract import HORIZONS, LABELS
