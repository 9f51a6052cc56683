"""The noise of the eval criterion at a fixed setting, read from the `noise` study's cells: what a tuning choice
must beat (`margin`, the rule of `mean_tf.training.tuning`) and what the report shows next to every choice."""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from mean_tf.training.tuning import trial_score

# (best eval criterion over the epochs, the trial score = mean of the best epochs, median |change| between epochs)
Scores = Tuple[float, float, float]


def row_scores(row: dict) -> Optional[Scores]:
    """A finished cell's eval scores: from its per-epoch selection curve (a network), else from its eval
    normalised Gini, mean over its labels (a model without epochs: best = trial score, no epoch change)."""
    history = (row.get("fit") or {}).get("history") or {}
    curve = np.asarray([v for v in history.get("val_selection", []) if v is not None and np.isfinite(v)], float)
    if curve.size:
        step = float(np.median(np.abs(np.diff(curve)))) if curve.size > 1 else float("nan")
        return float(curve.max()), trial_score(curve), step
    ginis = [m.get("normalized_gini") for m in (row.get("eval_metrics") or {}).values()]
    ginis = [g for g in ginis if g is not None and np.isfinite(g)]
    if not ginis:
        return None
    score = float(np.mean(ginis))
    return score, score, float("nan")


def per_seed(rows: Sequence[dict], dataset: str, model: str) -> Dict[int, Scores]:
    """{seed: `row_scores`} of `model`'s finished noise cells on `dataset` (the latest row of a seed wins)."""
    out = {}
    for r in rows:
        if r.get("status") == "ok" and r.get("study") == "noise" and r["dataset"] == dataset and r["model"] == model:
            scores = row_scores(r)
            if scores is not None:
                out[int(r["seed"])] = scores
    return out


def margin(found: Dict[int, Scores]) -> float:
    """The seed spread of the trial score at the defaults: max − min over the seeds; NaN with fewer than two."""
    scores = [s[1] for s in found.values() if np.isfinite(s[1])]
    return float(max(scores) - min(scores)) if len(scores) >= 2 else float("nan")
