"""Matplotlib figures shared by the benchmark report and the notebooks (no private copies elsewhere)."""
from __future__ import annotations

from typing import Dict, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402
import numpy as np  # noqa: E402


def gain_curves(curves: Mapping[str, Sequence[float]], title: str = "Gain curve", ax=None):
    """Share of total future value (y axis) captured by the top x % of customers ranked by each model.

    `curves` maps a name to the gain values at equally spaced population shares 0..1 (e.g. from
    `mean_tf.evaluation.metrics.gain_curve`, resampled). A dashed diagonal shows random targeting.
    """
    ax = ax or plt.subplots(figsize=(6, 4.5))[1]
    for i, (name, values) in enumerate(curves.items()):
        values = np.asarray(values, dtype=float)
        style = ("-", "--", "-.")[min(i // 10, 2)]  # the colour cycle has 10 colours
        ax.plot(np.linspace(0, 1, len(values)), values, label=name, lw=1.5, ls=style)
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


def learning_curves(x: Sequence[float], panels: Mapping[str, Mapping[str, Sequence[float]]],
                    errors: Mapping[str, Mapping[str, Sequence[float]]] | None = None, reference: str = "oracle",
                    xlabel: str = "training rows", title: str = ""):
    """One panel per metric (`panels`: {y label: {series: values at x}}), x on a log axis, error bars from
    `errors` (same shape); the `reference` series (the oracle) as a dashed black line. Returns the figure."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (ylabel, series) in zip(axes[0], panels.items()):
        for name, ys in series.items():
            err = (errors or {}).get(ylabel, {}).get(name)
            style = dict(color="k", ls="--") if name == reference else dict(marker="o", capsize=3)
            ax.errorbar(x, ys, yerr=err, label=name, **style)
        ax.set_xscale("log")
        ax.set_xticks(x, [f"{v:,.0f}" for v in x])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    return fig


def decile_chart(y_true, y_pred, n_bins: int = 10, title: str = "Mean predicted vs actual per decile", ax=None):
    """Customers ranked by prediction, cut into `n_bins` groups (`metrics.decile_calibration`): mean actual
    and mean predicted per group."""
    from mean_tf.evaluation.metrics import decile_calibration

    ax = ax or plt.subplots(figsize=(6, 4))[1]
    table = decile_calibration(y_true, y_pred, n_bins)
    x = table["group"]
    ax.bar(x - 0.2, table["mean_actual"], width=0.4, label="actual")
    ax.bar(x + 0.2, table["mean_predicted"], width=0.4, label="predicted")
    ax.set_xlabel("decile of predicted value (1 = highest)")
    ax.set_ylabel("mean value")
    ax.set_title(title)
    ax.legend()
    return ax


def heatmap(matrix, row_labels: Sequence[str], col_labels: Sequence[str], title: str = "", ax=None,
            fmt: str = "{:.2f}", cmap: str = "viridis", vmin: float | None = None, vmax: float | None = None,
            aspect: str = "equal"):
    """An annotated heat map (attention averaged per true bucket, confusion matrices, model x horizon tables);
    `vmin`/`vmax` fix the colour scale so that several maps compare; aspect="auto" fills the axes."""
    matrix = np.asarray(matrix, dtype=float)
    ax = ax or plt.subplots(figsize=(5, 4))[1]
    im = ax.imshow(matrix, cmap=cmap, vmin=vmin, vmax=vmax, aspect=aspect)
    ax.set_xticks(range(len(col_labels)), col_labels)
    ax.set_yticks(range(len(row_labels)), row_labels)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            if np.isfinite(matrix[i, j]):
                red, green, blue, _ = im.cmap(im.norm(matrix[i, j]))
                dark_cell = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
                ax.text(j, i, fmt.format(matrix[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if dark_cell else "black")
    ax.set_title(title)
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return ax


def loss_curves(history: Mapping[str, Sequence[float]], keys: Sequence[str] = ("loss_cltv", "loss_kl", "loss_dis"),
                title: str = "MEAN loss terms", ax=None, ylabel: str = "loss"):
    """Training (solid) and validation (dashed) curves of the named loss terms from a Keras History dict,
    against the epoch number (1 = first)."""
    ax = ax or plt.subplots(figsize=(6, 4))[1]
    for key in keys:
        if key in history:
            epochs = np.arange(1, len(history[key]) + 1)
            line, = ax.plot(epochs, history[key], label=key)
            if f"val_{key}" in history:
                ax.plot(epochs, history[f"val_{key}"], ls="--", color=line.get_color(), label=f"val_{key}")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


def grouped_bars(values: Mapping[str, Mapping[str, float]], ylabel: str = "", title: str = "", ax=None,
                 fmt: str = "{:.2f}"):
    """One group of bars per outer key (e.g. dataset), one bar per inner key (e.g. horizon), value on top."""
    ax = ax or plt.subplots(figsize=(7, 4))[1]
    groups = list(values)
    members = list(dict.fromkeys(k for inner in values.values() for k in inner))
    width = 0.8 / max(len(members), 1)
    for j, member in enumerate(members):
        x = np.arange(len(groups)) + (j - (len(members) - 1) / 2) * width
        heights = [values[g].get(member, np.nan) for g in groups]
        bars = ax.bar(x, heights, width=width, label=member)
        ax.bar_label(bars, labels=[fmt.format(h) if np.isfinite(h) else "" for h in heights], fontsize=7)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


def log_histograms(series: Mapping[str, Sequence[float]], boundaries: Sequence[float] = (), bins: int = 50,
                   xlabel: str = "value (log scale)", title: str = "", ax=None):
    """Histograms of the positive values of each series on a log x axis (zeros left out: show their share
    elsewhere); optional vertical lines at `boundaries` (same units as the values)."""
    ax = ax or plt.subplots(figsize=(6, 4))[1]
    positive = {name: np.asarray(v, dtype=float)[np.asarray(v, dtype=float) > 0] for name, v in series.items()}
    everything = np.concatenate([v for v in positive.values()] + [np.zeros(0)])
    if everything.size:
        edges = np.logspace(np.log10(everything.min()), np.log10(everything.max()), bins + 1)
        for name, v in positive.items():
            ax.hist(v, bins=edges, histtype="step", lw=1.5, label=f"{name} (n={v.size})")
    for i, b in enumerate(boundaries):
        ax.axvline(b, color="k", ls=":", lw=1, label="bucket boundaries" if i == 0 else None)
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("customers")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return ax


def density(x, y, xlabel: str = "", ylabel: str = "", title: str = "", ax=None, gridsize: int = 40):
    """Joint density of two non-negative money columns as a hexbin of log1p(x) against log1p(y), log counts."""
    ax = ax or plt.subplots(figsize=(5, 4))[1]
    hb = ax.hexbin(np.log1p(np.asarray(x, dtype=float)), np.log1p(np.asarray(y, dtype=float)), gridsize=gridsize,
                   bins="log", mincnt=1, cmap="viridis")
    ax.set_xlabel(f"log1p({xlabel})")
    ax.set_ylabel(f"log1p({ylabel})")
    ax.set_title(title)
    ax.figure.colorbar(hb, ax=ax, label="customers (log)")
    return ax


def save(ax_or_fig, path: str) -> str:
    """Save a figure as PNG (dpi 120) and close it; returns the path."""
    fig = getattr(ax_or_fig, "figure", ax_or_fig)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
