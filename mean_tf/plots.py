"""Matplotlib figures shared by the benchmark report and the notebooks (no private copies elsewhere)."""
from __future__ import annotations

from typing import Dict, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def gain_curves(curves: Mapping[str, Sequence[float]], title: str = "Gain curve", ax=None):
    """Share of total future value (y axis) captured by the top x % of customers ranked by each model.

    `curves` maps a name to the gain values at equally spaced population shares 0..1 (e.g. from
    `mean_tf.metrics.gain_curve`, resampled). A dashed diagonal shows random targeting.
    """
    ax = ax or plt.subplots(figsize=(6, 4.5))[1]
    for name, values in curves.items():
        values = np.asarray(values, dtype=float)
        ax.plot(np.linspace(0, 1, len(values)), values, label=name, lw=1.5)
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="random")
    ax.axvline(0.1, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("share of customers targeted (ranked by prediction)")
    ax.set_ylabel("share of future value captured")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="lower right")
    return ax


def sweep(values: Sequence[float], series: Dict[str, Sequence[float]], errors: Dict[str, Sequence[float]] | None = None,
          xlabel: str = "", ylabel: str = "", title: str = "", ax=None, log_x: bool = False):
    """A hyperparameter sweep: one line per series (e.g. per horizon), optional error bars."""
    ax = ax or plt.subplots(figsize=(6, 4))[1]
    for name, ys in series.items():
        err = None if errors is None else errors.get(name)
        ax.errorbar(values, ys, yerr=err, marker="o", capsize=3, label=name)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


def decile_chart(y_true, y_pred, n_bins: int = 10, title: str = "Mean predicted vs actual per decile", ax=None):
    """Customers ranked by prediction, cut into `n_bins` groups: mean actual and mean predicted per group."""
    ax = ax or plt.subplots(figsize=(6, 4))[1]
    order = np.argsort(-np.asarray(y_pred, dtype=float), kind="stable")
    groups = np.array_split(order, n_bins)
    actual = [np.mean(np.asarray(y_true)[g]) for g in groups]
    predicted = [np.mean(np.asarray(y_pred)[g]) for g in groups]
    x = np.arange(1, n_bins + 1)
    ax.bar(x - 0.2, actual, width=0.4, label="actual")
    ax.bar(x + 0.2, predicted, width=0.4, label="predicted")
    ax.set_xlabel("decile of predicted value (1 = highest)")
    ax.set_ylabel("mean value")
    ax.set_title(title)
    ax.legend()
    return ax


def heatmap(matrix, row_labels: Sequence[str], col_labels: Sequence[str], title: str = "", ax=None,
            fmt: str = "{:.2f}", cmap: str = "viridis"):
    """An annotated heat map (attention averaged per true bucket, confusion matrices)."""
    matrix = np.asarray(matrix, dtype=float)
    ax = ax or plt.subplots(figsize=(5, 4))[1]
    im = ax.imshow(matrix, cmap=cmap)
    ax.set_xticks(range(len(col_labels)), col_labels)
    ax.set_yticks(range(len(row_labels)), row_labels)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            if np.isfinite(matrix[i, j]):
                ax.text(j, i, fmt.format(matrix[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if matrix[i, j] < np.nanmean(matrix) else "black")
    ax.set_title(title)
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return ax


def loss_curves(history: Mapping[str, Sequence[float]], keys: Sequence[str] = ("loss_cltv", "loss_kl", "loss_dis"),
                title: str = "MEAN loss terms", ax=None):
    """Training (solid) and validation (dashed) curves of the named loss terms from a Keras History dict."""
    ax = ax or plt.subplots(figsize=(6, 4))[1]
    for key in keys:
        if key in history:
            line, = ax.plot(history[key], label=key)
            if f"val_{key}" in history:
                ax.plot(history[f"val_{key}"], ls="--", color=line.get_color(), label=f"val_{key}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


def save(ax_or_fig, path: str) -> str:
    """Save a figure as PNG (dpi 120) and close it; returns the path."""
    fig = getattr(ax_or_fig, "figure", ax_or_fig)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
