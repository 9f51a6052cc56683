"""Classical baselines behind the same registry: two-stage GBDT, BG/NBD + Gamma-Gamma, last period's spend.

Each is a fit/predict adapter on pandas DataFrames of the raw dataset rows (see docs/design.md):
`fit(train_df, eval_df, manifest) -> self` and `predict(df) -> np.ndarray [N, H]`, money, one column
per label of `config.labels`.
"""
from __future__ import annotations

import re
from typing import Dict, List, Optional

import numpy as np
import pandas as pd

from mean_tf.config import MEANConfig
from mean_tf.errors import MeanTFError

# A small L2 penalty keeps the lifetimes optimisers stable on real data (lifetimes' docs suggest 0.001-0.1).
LIFETIMES_PENALIZER = 0.001
BGNBD_KEYS = ("frequency", "recency", "T", "monetary_value")


def horizon_days(label: str) -> int:
    """The horizon of a label named like `cltv_<days>`."""
    match = re.fullmatch(r"cltv_(\d+)", label)
    if not match:
        raise MeanTFError(f"label {label!r} does not name a horizon in days (expected cltv_<days>)")
    return int(match.group(1))


def _columns(df: pd.DataFrame, columns: List[str], what: str) -> pd.DataFrame:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise MeanTFError(f"{what}: column {missing[0]!r} is missing from the data")
    return df[columns]


class ClassicalModel:
    """Shared plumbing of the fit/predict adapters."""

    name = "classical"

    def __init__(self, config: MEANConfig):
        self.config = config
        self._fitted = False

    def _check_fitted(self):
        if not self._fitted:
            raise MeanTFError(f"{self.name}: predict() called before fit()")

    def fit(self, train_df: pd.DataFrame, eval_df: Optional[pd.DataFrame], manifest: dict) -> "ClassicalModel":
        raise NotImplementedError

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError


class TwoStageGBDT(ClassicalModel):
    """P(y > 0) x E[y | y > 0], each a scikit-learn HistGradientBoosting model, one pair per label.

    Left open by the cascading approach the paper cites, and the simple readings taken here: the
    classifier uses log loss, the regressor the Gamma deviance (log link, the mean of a positive,
    skewed spend) fitted on payers only; categorical strings are ordinal-encoded and passed as native
    categorical features (unseen categories count as missing; at most 254 categories per feature, the
    rarest grouped); `gbdt_max_iter` trees each, `gbdt_learning_rate`, `gbdt_max_leaf_nodes` and `gbdt_l2`
    (scikit-learn's defaults; tuned by `mean_tf.training.tuning`); `eval_df` is unused (HistGradientBoosting holds out
    its own 10% for early stopping above 10 000 rows). A label with a single class falls back to its
    training share of payers, and one without payers predicts 0.
    """

    name = "two_stage_gbdt"

    def fit(self, train_df, eval_df, manifest):
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        self.numeric = list(manifest.get("numeric_features", []))
        self.categorical = list(manifest.get("categorical_features", []))
        if not self.numeric and not self.categorical:
            raise MeanTFError(f"{self.name}: the manifest lists no numeric_features and no categorical_features")
        x = self._design(train_df, fit=True)
        mask = [False] * len(self.numeric) + [True] * len(self.categorical)
        common = dict(max_iter=self.config.gbdt_max_iter, learning_rate=self.config.gbdt_learning_rate,
                      max_leaf_nodes=self.config.gbdt_max_leaf_nodes, l2_regularization=self.config.gbdt_l2,
                      random_state=self.config.seed, categorical_features=mask if self.categorical else None)
        self.stages: Dict[str, tuple] = {}
        for label, y in _columns(train_df, list(self.config.labels), self.name).items():
            y = y.to_numpy(dtype=np.float64)
            payer = y > 0
            classifier = (HistGradientBoostingClassifier(**common).fit(x, payer)
                          if 0 < payer.sum() < payer.size else float(payer.mean()))
            regressor = (HistGradientBoostingRegressor(loss="gamma", **common).fit(x[payer], y[payer])
                         if payer.any() else None)
            self.stages[label] = (classifier, regressor)
        self._fitted = True
        return self

    def _design(self, df: pd.DataFrame, fit: bool = False) -> np.ndarray:
        numeric = _columns(df, self.numeric, self.name).to_numpy(dtype=np.float64)
        if not self.categorical:
            return numeric
        from sklearn.preprocessing import OrdinalEncoder

        strings = _columns(df, self.categorical, self.name).astype(str)
        if fit:
            self.encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                                          max_categories=254).fit(strings)
        return np.hstack([numeric, self.encoder.transform(strings)])

    def predict(self, df):
        self._check_fitted()
        x = self._design(df)
        columns = []
        for label in self.config.labels:
            classifier, regressor = self.stages[label]
            p_payer = (np.full(len(x), classifier) if isinstance(classifier, float)
                       else classifier.predict_proba(x)[:, 1])
            spend = regressor.predict(x) if regressor is not None else np.zeros(len(x))
            columns.append(p_payer * spend)
        return np.stack(columns, axis=1)


class BGNBDGammaGamma(ClassicalModel):
    """BG/NBD (Fader et al. 2005) x Gamma-Gamma (Fader et al. 2005b) from the `lifetimes` package.

    Expected spend in the next h days = E[purchases in (T, T + h] | frequency, recency, T] x
    E[average order value | frequency, monetary_value]. Left open, and the simple readings taken:
    every training row (customer, cutoff) counts as one customer history; recency and T are in days,
    so the horizon h of `cltv_<h>` is used as is; no discounting; Gamma-Gamma is fitted on rows with
    repeat purchases (frequency > 0, monetary_value > 0) and gives first-time buyers the population
    mean; both fits use an L2 penalty of LIFETIMES_PENALIZER; `eval_df` is unused. When the fit finds
    (almost) no dropout, lifetimes' hypergeometric term is not finite; there the BG/NBD limit without
    dropout, the NBD mean (r + frequency) * h / (alpha + T), is used. Only datasets with transaction
    histories (a manifest with `bgnbd_features`) qualify.
    """

    name = "bgnbd_gg"

    def fit(self, train_df, eval_df, manifest):
        from lifetimes import BetaGeoFitter, GammaGammaFitter

        columns = manifest.get("bgnbd_features") or {}
        if not columns:
            raise MeanTFError(f"{self.name}: dataset {manifest.get('name', '?')!r} has no bgnbd_features "
                              f"(BG/NBD + Gamma-Gamma needs transaction histories: {', '.join(BGNBD_KEYS)})")
        missing = [k for k in BGNBD_KEYS if k not in columns]
        if missing:
            raise MeanTFError(f"{self.name}: manifest bgnbd_features lacks {missing[0]!r}")
        self.columns = [columns[k] for k in BGNBD_KEYS]
        frequency, recency, age, monetary = self._history(train_df)
        self.bgf = BetaGeoFitter(penalizer_coef=LIFETIMES_PENALIZER).fit(frequency, recency, age)
        repeat = (frequency > 0) & (monetary > 0)
        if not repeat.any():
            raise MeanTFError(f"{self.name}: no training row has a repeat purchase ({self.columns[0]} > 0), "
                              f"Gamma-Gamma cannot be fitted")
        self.ggf = GammaGammaFitter(penalizer_coef=LIFETIMES_PENALIZER).fit(frequency[repeat], monetary[repeat])
        self._fitted = True
        return self

    def __getstate__(self):
        """Pickle the fitted parameters only: lifetimes' fitters hold unpicklable lambdas."""
        state = dict(self.__dict__)
        for name in ("bgf", "ggf"):
            if name in state:
                state[name] = state[name].params_
        return state

    def __setstate__(self, state):
        from lifetimes import BetaGeoFitter, GammaGammaFitter

        self.__dict__.update(state)
        for name, fitter in (("bgf", BetaGeoFitter), ("ggf", GammaGammaFitter)):
            if name in state:
                restored = fitter(penalizer_coef=LIFETIMES_PENALIZER)
                restored.params_ = state[name]
                setattr(self, name, restored)

    def _history(self, df):
        values = _columns(df, self.columns, self.name).to_numpy(dtype=np.float64)
        return tuple(values[:, i] for i in range(len(BGNBD_KEYS)))

    def predict(self, df):
        self._check_fitted()
        frequency, recency, age, monetary = self._history(df)
        order_value = np.asarray(self.ggf.conditional_expected_average_profit(
            pd.Series(frequency), pd.Series(np.where(frequency > 0, monetary, 0.0))), dtype=np.float64)
        purchases = [self._expected_purchases(horizon_days(label), frequency, recency, age)
                     for label in self.config.labels]
        return np.stack([p * order_value for p in purchases], axis=1)

    def _expected_purchases(self, days, frequency, recency, age):
        """BG/NBD's E[purchases in (T, T + days]], or its no-dropout (NBD) limit where that is not finite."""
        with np.errstate(all="ignore"):
            expected = np.asarray(self.bgf.conditional_expected_number_of_purchases_up_to_time(
                days, frequency, recency, age), dtype=np.float64)
        r, alpha = self.bgf.params_["r"], self.bgf.params_["alpha"]
        return np.where(np.isfinite(expected), expected, (r + frequency) * days / (alpha + age))


class LastPeriod(ClassicalModel):
    """Rule of thumb: the customer's spend in the same-length window before the cutoff, per label.

    The columns come from the manifest's `last_period_features` ({label: column}). Left open: negative
    net spend (returns) is predicted as 0, since CLTV labels are >= 0.
    """

    name = "last_period"

    def fit(self, train_df, eval_df, manifest):
        columns = manifest.get("last_period_features") or {}
        missing = [label for label in self.config.labels if label not in columns]
        if missing:
            raise MeanTFError(f"{self.name}: manifest last_period_features has no column for label {missing[0]!r}")
        self.columns = [columns[label] for label in self.config.labels]
        _columns(train_df, self.columns, self.name)
        self._fitted = True
        return self

    def predict(self, df):
        self._check_fitted()
        return np.clip(_columns(df, self.columns, self.name).to_numpy(dtype=np.float64), 0.0, None)
