"""`mean-tf data online-retail|cdnow|synthetic|table|transactions|kaggle-shoppers|criteo-ssc --out DIR [options]`: build a dataset
folder (gzipped TFRecords of tf.Example per split + manifest.json; see docs/design.md "Dataset files").
`mean-tf data example-log --out FILE`: the small example transaction log (data/example_transactions.csv)."""
from __future__ import annotations

import argparse
import resource
import sys
import time

from mean_tf.commands._common import add_list_option, names


def _cutoffs(text: str):
    parts = names(text)
    if not parts:
        raise argparse.ArgumentTypeError("give at least one date, e.g. 2010-12-01")
    return parts


def register(subparsers) -> None:
    p = subparsers.add_parser("data", help="build a dataset: online-retail, cdnow, synthetic, kaggle-shoppers, criteo-ssc "
                                           "or your own table",
                              description="Build a dataset folder: train/eval/test gzipped TFRecords of tf.Example "
                                          "and manifest.json. Writes are atomic (a temp folder next to --out, "
                                          "renamed at the end); an existing dataset folder is replaced.")
    sub = p.add_subparsers(dest="dataset", metavar="DATASET")

    def common(sp, cutoff_default: str):
        sp.add_argument("--out", required=True, help="output folder (replaced if it holds an earlier dataset)")
        sp.add_argument("--input", default=None, help="input file (default: the bundled / packaged copy)")
        add_list_option(sp, "--cutoffs", of=_cutoffs, default=None,
                        help=f"cutoff dates YYYY-MM-DD (default: {cutoff_default})")
        sp.add_argument("--split", choices=("customer", "time"), default="customer",
                        help="customer: 7:1:2 by customer (default); time: test = last cutoff, "
                             "earlier cutoffs 7:1 train/eval by customer")
        sp.add_argument("--seed", type=int, default=0, help="split seed (default 0)")

    sp = sub.add_parser("online-retail", help="Online Retail II (bundled, real): customer x monthly cutoffs")
    common(sp, "first of each month 2010-01-01 .. 2010-12-01")
    sp.set_defaults(func=_online_retail)

    sp = sub.add_parser("cdnow", help="CDNOW (from the lifetimes package, real): new customers of Q1 1997")
    common(sp, "1997-04-01")
    sp.set_defaults(func=_cdnow)

    sp = sub.add_parser("example-log", help="a small transaction log (CSV) of Online Retail II customers",
                        description="One row per order (customer_id, time, amount, quantity, country) of customers "
                                    "drawn at random from the bundled Online Retail II data: what "
                                    "data/example_transactions.csv holds (the defaults), input for `mean-tf data "
                                    "transactions`.")
    sp.add_argument("--out", required=True, help="output CSV file (written atomically)")
    sp.add_argument("--customers", type=int, default=400, help="customers drawn (default 400)")
    sp.add_argument("--seed", type=int, default=0, help="draw seed (default 0)")
    sp.add_argument("--input", default=None, help="Online Retail II lines (default: the bundled parquet file)")
    sp.set_defaults(func=_example_log)

    sp = sub.add_parser("synthetic", help="synthetic data at the paper's scale, with oracle expected values")
    sp.add_argument("--out", required=True, help="output folder (replaced if it holds an earlier dataset)")
    sp.add_argument("--rows", type=int, default=100_000, help="rows (customers), up to 22M (default 100000)")
    sp.add_argument("--features", type=int, default=720, help="features, numeric + categorical (default 720)")
    sp.add_argument("--categorical-share", type=float, default=0.1, help="share of categorical features (default 0.1)")
    sp.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    sp.add_argument("--informative-numeric", type=int, default=None, metavar="N",
                    help="numeric features that drive the labels (default 12)")
    sp.add_argument("--informative-categorical", type=int, default=None, metavar="N",
                    help="categorical features that drive the labels (default 2)")
    sp.add_argument("--shards", type=int, default=None, help="files per split (default: ~600 MB of rows each)")
    sp.add_argument("--workers", type=int, default=None, help="processes (default: CPU count)")
    sp.add_argument("--compresslevel", type=int, default=1, help="gzip level 0..9 (default 1, the fastest)")
    sp.set_defaults(func=_synthetic)

    sp = sub.add_parser("table", help="your own feature table (CSV or Parquet): one row per customer and cutoff",
                        description="Columns: customer_id, cutoff (a date), the features, the labels cltv_<days> "
                                    "(money, >= 0, non-decreasing in the horizon) and optionally split "
                                    "(train/eval/test). Features are numeric unless named in --categorical.")
    sp.add_argument("--out", required=True, help="output folder (replaced if it holds an earlier dataset)")
    sp.add_argument("--input", required=True, help="the table: .csv, or .parquet")
    sp.add_argument("--name", default=None, help="dataset name (default: the input file's name)")
    add_list_option(sp, "--labels", default=(), metavar="COLS",
                    help="label columns (default: every cltv_<days> column)")
    add_list_option(sp, "--categorical", default=(), metavar="COLS", help="categorical feature columns")
    add_list_option(sp, "--numeric", default=None, metavar="COLS",
                    help="numeric feature columns (default: every other column; with this list, others are ignored)")
    add_list_option(sp, "--money", default=(), metavar="COLS",
                    help="heavy-tailed numeric columns: sign*log1p before the z-score")
    sp.add_argument("--split", choices=("customer", "time"), default="customer",
                    help="how to split rows without a split column (default customer)")
    sp.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    sp.set_defaults(func=_table)

    sp = sub.add_parser("transactions", help="your own transaction log (CSV or Parquet): a training or a scoring dataset",
                        description="One row per transaction (or order line). With --cutoffs: customer x cutoff "
                                    "snapshots with features before each cutoff and cltv_30/90/180/365 labels after "
                                    "it (every label window must end within the data). With --score-date: the same "
                                    "features at that date and no labels, for `mean-tf score` "
                                    "(--score-date end: the day after the last transaction).")
    sp.add_argument("--out", required=True, help="output folder (replaced if it holds an earlier dataset)")
    sp.add_argument("--input", required=True, help="the transaction log: .csv, or .parquet")
    sp.add_argument("--customer", required=True, metavar="COL", help="customer id column")
    sp.add_argument("--time", required=True, metavar="COL", help="transaction time column (dates or datetimes)")
    sp.add_argument("--amount", required=True, metavar="COL", help="money column (negative = a return)")
    sp.add_argument("--quantity", metavar="COL", help="units column (adds unit and price features)")
    sp.add_argument("--product", metavar="COL", help="product column (adds distinct products, basket breadth)")
    sp.add_argument("--order", metavar="COL", help="order id column (default: one order per customer and time)")
    add_list_option(sp, "--categorical", default=(), metavar="COLS",
                    help="customer attribute columns (e.g. country): categorical features and slices")
    sp.add_argument("--time-format", default=None, help="strftime format of --time (default: parsed by pandas)")
    add_list_option(sp, "--cutoffs", of=_cutoffs, default=(), help="cutoff dates YYYY-MM-DD (training)")
    sp.add_argument("--score-date", default=None, metavar="DATE",
                    help="YYYY-MM-DD or 'end': build a scoring dataset at this date instead")
    sp.add_argument("--name", default=None, help="dataset name (default: the input file's name)")
    sp.add_argument("--split", choices=("customer", "time"), default="customer",
                    help="customer: 7:1:2 by customer (default); time: test = last cutoff")
    sp.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    sp.set_defaults(func=_transactions)

    sp = _public_builder(
        sub, "kaggle-shoppers", _kaggle_shoppers, "kaggle_shoppers", "transactions.csv or transactions.csv.gz from Kaggle",
        "seed of the eval split carved from train (default 0)",
        help="Kaggle Acquire Valued Shoppers transactions (you download it): google/lifetime_value's ZILN protocol",
        description="One row per shopper of each --company: log of the first day's spend and the "
                    "chain/dept/category/brand/productmeasure of its largest item; label cltv_365, the spend in the "
                    "365 days after the first day (purchase rows only); test = the notebook's random 20 %%, eval "
                    "carved from the rest. --protocol horizons adds cltv_30/90/180 and the first day's transaction "
                    "features.")
    add_list_option(sp, "--company", default=("103600030",), metavar="IDS",
                    help="companies (default 103600030, the notebook's); several are pooled, each split on its own")
    sp.add_argument("--protocol", choices=("ziln", "horizons"), default="ziln",
                    help="ziln: the published features and label (default); horizons: also cltv_30/90/180 and "
                         "transaction features")
    _public_builder(
        sub, "criteo-ssc", _criteo_ssc, "criteo_ssc", "CriteoSearchData (or a .gz of it)", "split seed (default 0)",
        help="Criteo Sponsored Search Conversion Log (you download it): one row per click, label = the conversion value",
        description="CriteoSearchData (tab-separated, no header; gzip too): label conversion_value (SalesAmountInEuro, "
                    "0 without a sale), nb_clicks_1week and product_price numeric, the product/device/audience/partner "
                    "columns categorical; rows split 7:1:2 at random (a seeded hash of the row number).")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _summary(m, seconds: float, workers: bool = False) -> None:
    rows = ", ".join(f"{s} {n:,}" for s, n in m.row_counts.items())
    print(f"wrote {m.name} to {m.root} in {seconds:.1f} s: {rows} rows; "
          f"{len(m.numeric_features)} numeric + {len(m.categorical_features)} categorical features")
    for s, z in m.zero_shares.items():
        print(f"  zero share {s:5s} " + "  ".join(f"{k} {v:.1%}" for k, v in z.items()))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"  peak memory {peak:.0f} MB" + (f" (largest worker process {child:.0f} MB)" if workers and child else ""))


def _online_retail(args) -> int:
    from mean_tf.data import online_retail

    t0 = time.time()
    m = online_retail.build(args.out, args.input, args.cutoffs or online_retail.DEFAULT_CUTOFFS, args.split, args.seed)
    _summary(m, time.time() - t0)
    return 0


def _cdnow(args) -> int:
    from mean_tf.data import cdnow

    t0 = time.time()
    m = cdnow.build(args.out, args.input, args.cutoffs or cdnow.DEFAULT_CUTOFFS, args.split, args.seed)
    _summary(m, time.time() - t0)
    return 0


def _table(args) -> int:
    from mean_tf.data import table

    t0 = time.time()
    m = table.build(args.out, args.input, labels=args.labels, categorical=args.categorical, numeric=args.numeric,
                    money=args.money, split_rule=args.split, seed=args.seed, name=args.name)
    _summary(m, time.time() - t0)
    return 0


def _example_log(args) -> int:
    from mean_tf.data import online_retail

    if not args.out.lower().endswith(".csv"):
        from mean_tf.errors import MeanTFError

        raise MeanTFError(f"{args.out}: the example log is written as CSV: give a .csv path")
    orders = online_retail.write_example_log(args.out, args.customers, args.seed, args.input)
    print(f"wrote {args.out}: {orders:,} orders of {args.customers:,} customers (Online Retail II, CC BY 4.0)")
    return 0


def _transactions(args) -> int:
    from mean_tf.data import transaction_file

    t0 = time.time()
    m = transaction_file.build(args.out, args.input, args.customer, args.time, args.amount, cutoffs=args.cutoffs,
                               score_date=args.score_date, quantity=args.quantity, product=args.product,
                               order=args.order, categorical=args.categorical, time_format=args.time_format,
                               split_rule=args.split, seed=args.seed, name=args.name)
    _summary(m, time.time() - t0)
    return 0


def _synthetic(args) -> int:
    from mean_tf.data import synthetic

    t0 = time.time()

    def progress(done, total):
        if sys.stderr.isatty() or total >= 4:
            print(f"  shard {done}/{total} ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)

    m = synthetic.build(args.out, args.rows, args.features, seed=args.seed, categorical_share=args.categorical_share,
                        shards=args.shards, workers=args.workers, compresslevel=args.compresslevel, progress=progress,
                        informative_numeric=args.informative_numeric,
                        informative_categorical=args.informative_categorical)
    _summary(m, time.time() - t0, workers=True)
    return 0



PROGRESS_EVERY_S = 30.0  # without a terminal: a line per this many seconds


class _RowsRead:
    """Progress on stderr, for the public-benchmark builders: on a terminal a bar over the input file's bytes
    with the rows read (erased when done, so an error stays one line); otherwise a line every
    PROGRESS_EVERY_S seconds."""

    def __init__(self):
        self.bar, self.stage, self.last = None, None, time.time()

    def __call__(self, rows: int, done: int, total: int, stage: str = "reading") -> None:
        if not sys.stderr.isatty():
            if time.time() - self.last >= PROGRESS_EVERY_S:
                self.last = time.time()
                print(f"  {stage}: {rows:,} rows read ({done / max(total, 1):.0%} of the file)", file=sys.stderr,
                      flush=True)
            return
        from tqdm import tqdm

        if self.bar is None or stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = tqdm(total=total, unit="B", unit_scale=True, desc=f"  {stage}", file=sys.stderr, leave=False)
        self.bar.set_postfix_str(f"{rows:,} rows read", refresh=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _public_builder(sub, command: str, func, name: str, input_help: str, seed_help: str, **texts):
    """The subcommand of a public-benchmark builder, with the options both have."""
    sp = sub.add_parser(command, **texts)
    sp.add_argument("--out", required=True, help="output folder (replaced if it holds an earlier dataset)")
    sp.add_argument("--input", required=True, help=input_help)
    sp.add_argument("--name", default=name, help=f"dataset name (default {name})")
    sp.add_argument("--seed", type=int, default=0, help=seed_help)
    sp.set_defaults(func=func)
    return sp


def _streamed(build, args, **options) -> int:
    """Run a streaming builder with the rows-read progress, then print the summary."""
    t0, progress = time.time(), _RowsRead()
    try:
        m = build(args.out, args.input, seed=args.seed, name=args.name, progress=progress, **options)
    finally:
        progress.close()
    _summary(m, time.time() - t0)
    return 0


def _kaggle_shoppers(args) -> int:
    from mean_tf.data import kaggle_shoppers

    return _streamed(kaggle_shoppers.build, args, companies=args.company, protocol=args.protocol)


def _criteo_ssc(args) -> int:
    from mean_tf.data import criteo_ssc

    return _streamed(criteo_ssc.build, args)
