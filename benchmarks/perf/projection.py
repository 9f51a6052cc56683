"""From measured pipeline runs at a few sizes to per-row costs and a 22M-row projection on Dataflow + Vertex AI."""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Tuple

import numpy as np

from mean_tf.data.splits import FRACTIONS

PAPER_ROWS = 22_000_000
PAPER_FEATURES = 720
LARGEST_ROWS = 1_000_000  # benchmark 4's largest size, the one its goals name
# Cloud sizing used by the projection (stated on the page next to the numbers).
DATAFLOW_VCPUS_PER_WORKER = 8  # n2-standard-8
VERTEX_VCPUS_PER_REPLICA = 16  # n2-standard-16
PARALLEL_EFFICIENCY = 0.7  # share of ideal speed-up kept when spreading work over many cores
LOCAL_CORES = 2
DATAFLOW_WORKERS = 100  # the projection's Dataflow pool (800 vCPUs)
TRAIN_EPOCHS = 10  # epochs until early stopping (patience 3; the paper gives 30 as the cap)
TRAIN_SHARE = FRACTIONS[0]  # rows of the train split
BEAM_COMPONENTS = ("ExampleGen", "StatisticsGen", "Transform", "Evaluator", "ExampleValidator", "BulkInferrer")
MIN_COMPONENT_SECONDS = 5.0  # shorter components are bookkeeping: fixed cost only
RESOLVED_SHARE = 0.1  # a fitted per-row cost must explain >= 10 % of the largest run's time to be used
LINEAR_TOLERANCE = 1.15  # time may grow at most 15 % faster than rows
FLAT_MEMORY_TOLERANCE = 1.3  # peak memory may grow at most 30 % over the size range
MIN_MEMORY_GROWTH_GIB = 1.0  # ... or by less than this (the runner's resident memory drifts by a few hundred MB)

PROJECTION_ASSUMPTIONS = (
    f"local per-row costs are CPU time on {LOCAL_CORES} cores (per_row × {LOCAL_CORES} CPU-seconds per row, an upper "
    f"bound when a component used less than both cores); Dataflow workers n2-standard-{DATAFLOW_VCPUS_PER_WORKER}, "
    f"Vertex replicas n2-standard-{VERTEX_VCPUS_PER_REPLICA}, {PARALLEL_EFFICIENCY:.0%} parallel efficiency; "
    f"{TRAIN_EPOCHS} epochs on the {TRAIN_SHARE:.0%} train split; fixed costs (Beam graph, start-up) counted once; "
    "no data skew, no shuffle-bound stages beyond those measured; when the runs used fewer than 720 features, "
    "per-row costs are scaled by 720 / features (cost proportional to the feature values per row) and the fixed "
    "costs, which also grow with the number of features, are taken as measured.")


def fit_line(rows: List[float], seconds: List[float]):
    """Least-squares seconds = fixed + per_row * rows (per_row and fixed clipped at 0)."""
    per_row = max(0.0, float(np.polyfit(rows, seconds, 1)[0])) if len(set(rows)) > 1 else 0.0
    return max(0.0, float(np.mean(seconds)) - per_row * float(np.mean(rows))), per_row


def component(run: Dict, name: str) -> Optional[Dict]:
    """The named component's entry of one pipeline run, or None."""
    return next((c for c in run["components"] if c["name"] == name), None)


def _points(runs: List[Dict], name: str) -> List[Tuple[int, float]]:
    """(rows, seconds) of the named component in each run that has it."""
    return [(r["rows"], c["seconds"]) for r in runs for c in [component(r, name)] if c]


def _predicted(runs: List[Dict], name: str) -> Optional[float]:
    """The component's seconds at the largest run from the line through the smaller runs (needs two of them)."""
    points = _points(runs[:-1], name)
    if len(points) < 2:
        return None
    fixed, per_row = fit_line(*zip(*points))
    return fixed + per_row * runs[-1]["rows"]


def _grows(small_gib: float, large_gib: float) -> bool:
    """Peak memory grew over the size range: by more than the tolerance and more than a GiB."""
    return large_gib > small_gib * FLAT_MEMORY_TOLERANCE and large_gib - small_gib > MIN_MEMORY_GROWTH_GIB


def project(pipe: Dict, train_examples_per_s: Optional[float] = None) -> Optional[Dict]:
    """Per-component fixed and per-row costs, a linearity/flat-memory verdict and the 22M-row projection text."""
    runs = sorted(pipe.get("runs", []), key=lambda r: r["rows"])
    if len(runs) < 2:
        return None
    names = list(dict.fromkeys(c["name"] for r in runs for c in r["components"]))
    small, large = runs[-2], runs[-1]
    row_growth = large["rows"] / small["rows"]
    comps = []
    for name in names:
        points = _points(runs, name)
        if len(points) < 2:
            continue
        fixed, per_row = fit_line(*zip(*points))
        last_rows, last_seconds = points[-1]
        if last_seconds < MIN_COMPONENT_SECONDS:
            basis, per_row, fixed = "fixed only", 0.0, last_seconds
        elif per_row * last_rows >= RESOLVED_SHARE * last_seconds:
            basis = "fit"
        else:  # time did not grow measurably: bound the per-row cost by all of the largest run's time
            basis, per_row, fixed = "upper bound", last_seconds / last_rows, 0.0
        peaks = {r["rows"]: c["peak_rss_gib"] for r in runs for c in [component(r, name)] if c}
        small_peak, large_peak = peaks.get(small["rows"]), peaks.get(large["rows"])
        memory = (f"{small_peak:.2f} → {large_peak:.2f} GiB" if small_peak and large_peak else "—")
        comps.append({"name": name, "fixed_seconds": fixed, "per_row_ms": per_row * 1e3, "per_row_s": per_row,
                      "predicted_seconds": _predicted(runs, name), "largest_seconds": dict(points).get(large["rows"]),
                      "beam": any(key.lower() in name.lower() for key in BEAM_COMPONENTS), "basis": basis,
                      "memory": memory,
                      # A component of a few seconds has no memory of its own: its window holds its neighbours'.
                      "memory_grows": bool(small_peak and large_peak and last_seconds >= MIN_COMPONENT_SECONDS
                                           and _grows(small_peak, large_peak))})
    time_growth = large["wall_seconds"] / small["wall_seconds"]
    mem_growth = large["peak_rss_gib"] / small["peak_rss_gib"]
    growing = [c for c in comps if c["memory_grows"]]
    flat = not _grows(small["peak_rss_gib"], large["peak_rss_gib"]) and not growing
    if time_growth < 1.0:  # a bigger run finishing sooner says the runs measured load and fixed costs, not rows
        linear = None
        time_text = "not resolved: the larger run was faster (fixed costs and machine load dominate at these sizes)"
    else:
        linear = time_growth <= row_growth * LINEAR_TOLERANCE
        time_text = "at most linear" if linear else "faster than linear"
    per_component = (", growing in " + ", ".join(f"{c['name']} ({c['memory']})" for c in growing) if growing
                     else ", flat in every component")
    verdict = (f"rows ×{row_growth:.1f} → wall time ×{time_growth:.2f} ({time_text}), "
               f"peak memory ×{mem_growth:.2f} overall{per_component} ({'flat' if flat else 'growing'})")
    scale = PAPER_FEATURES / float(pipe.get("features") or PAPER_FEATURES)
    local_hours = sum(c["fixed_seconds"] + c["per_row_s"] * scale * PAPER_ROWS for c in comps) / 3600
    scaled = f", per-row costs × {scale:g} for 720 features" if scale != 1 else ""
    bounded = [c["name"] for c in comps if c["basis"] == "upper bound"]
    lines = [f"On this 2-core machine the whole pipeline would take about {local_hours:,.0f} h at 22M rows × 720 "
             f"features (the fitted lines, extrapolated{scaled})."]
    if large["rows"] < LARGEST_ROWS:
        hours = sum(c["fixed_seconds"] + c["per_row_s"] * scale * LARGEST_ROWS for c in comps) / 3600
        lines.append(f"The same lines give about {hours:,.1f} h for {LARGEST_ROWS:,} rows, the largest size "
                     "the goals name.")
    if bounded:
        lines.append(f"{', '.join(bounded)}: time did not grow measurably between the runs (fixed costs and machine "
                     "load dominate at these sizes), so their per-row cost is an upper bound (all of the largest "
                     "run's time counted per row), and so are the hours below.")
    beam_cpu_s = sum(c["per_row_s"] * scale * LOCAL_CORES * PAPER_ROWS for c in comps if c["beam"])
    beam_hours = beam_cpu_s / (DATAFLOW_WORKERS * DATAFLOW_VCPUS_PER_WORKER * PARALLEL_EFFICIENCY) / 3600
    beam_fixed = sum(c["fixed_seconds"] for c in comps if c["beam"]) / 3600
    lines.append(f"Beam components ({', '.join(c['name'] for c in comps if c['beam'])}): "
                 f"{beam_cpu_s / 3600:,.0f} CPU-hours at 22M rows; on Dataflow with {DATAFLOW_WORKERS} n2-standard-"
                 f"{DATAFLOW_VCPUS_PER_WORKER} workers ≈ {_duration(beam_hours)} of processing"
                 + (f" plus ≈ {_duration(beam_fixed)} of fixed cost (graph construction, worker start-up)" if beam_fixed >= 0.05
                    else "") + ", the components in sequence.")
    trainer = next((c for c in comps if "trainer" in c["name"].lower()), None)
    rate = train_examples_per_s or pipe.get("train_examples_per_s")
    if rate:
        cpu_s = TRAIN_EPOCHS * TRAIN_SHARE * PAPER_ROWS / rate * LOCAL_CORES
        replicas = max(1, math.ceil(cpu_s / (VERTEX_VCPUS_PER_REPLICA * PARALLEL_EFFICIENCY * 2 * 3600)))
        hours = cpu_s / (replicas * VERTEX_VCPUS_PER_REPLICA * PARALLEL_EFFICIENCY) / 3600
        lines.append(f"Trainer (MEAN at {rate:,.0f} examples/s on 2 cores, benchmark 1): {TRAIN_EPOCHS} epochs × "
                     f"{TRAIN_SHARE * PAPER_ROWS / 1e6:.1f}M rows = {cpu_s / 3600:,.0f} CPU-hours; Vertex AI Training "
                     f"with MultiWorkerMirroredStrategy on {replicas} n2-standard-{VERTEX_VCPUS_PER_REPLICA} "
                     f"replica{'s' if replicas > 1 else ''} ≈ {_duration(hours)} (or 1 GPU, not measured here).")
    elif trainer:
        lines.append(f"Trainer: {trainer['per_row_ms']:.3f} ms per row locally (all epochs of the pipeline run).")
    ok = (linear and flat) if linear is not None else (False if not flat else None)
    return {"components": comps, "linear_and_flat": ok, "verdict": verdict, "text": " ".join(lines),
            "local_hours": local_hours, "prediction": _prediction_text(comps, runs)}


def _duration(hours: float) -> str:
    return f"{hours:.1f} h" if hours >= 1 else f"{hours * 60:.0f} min"


def _prediction_text(comps: List[Dict], runs: List[Dict]) -> str:
    """The out-of-sample check: the lines through the smaller runs against the largest run, in component time."""
    checked = [c for c in comps if c["predicted_seconds"] is not None and c["largest_seconds"] is not None]
    if not checked:
        return ""
    predicted = sum(c["predicted_seconds"] for c in checked)
    measured = sum(c["largest_seconds"] for c in checked)
    worst = max(checked, key=lambda c: abs(c["largest_seconds"] - c["predicted_seconds"]))
    return (f"Out of sample: the lines through the {len(runs) - 1} smaller runs alone predict {predicted:,.0f} s of "
            f"component time for the {runs[-1]['rows']:,}-row run; it took {measured:,.0f} s "
            f"(×{measured / predicted:.2f}). The largest miss is {worst['name']}: predicted "
            f"{worst['predicted_seconds']:,.0f} s, took {worst['largest_seconds']:,.0f} s.")
