"""Run benchmark cells: build each dataset once, Transform it with the pipeline's `preprocessing_fn`
(cached per Transform setting), train each model through `mean_tf.training.protocol` with its tuned setting
(`mean_tf.training.tuning`, searched on the eval split by the plan's `tune` cells), score the eval and test
splits with `mean_tf.evaluation.metrics.evaluate`, and append one JSON line per finished cell (so a rerun resumes).
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
import time
from typing import Callable, Dict, List, Sequence

import numpy as np

from mean_tf.benchmark import noise
from mean_tf.benchmark.plan import (PROTOCOL, PROTOCOLS, SMOKE, TUNE_LABEL, TUNED_MODELS, TUNED_STUDIES, Cell, Plan, ScaleSet,
                                    noise_cells, primary_label, tune_cell, tuned_model)
from mean_tf.config import MEANConfig
from mean_tf.contract import LABELS
from mean_tf.evaluation import metrics
from mean_tf.models.mean import training_bn_momentum
from mean_tf.training import fit_predict, tuning
from mean_tf.errors import MeanTFError

GAIN_POINTS = 101
# Small-data settings of the smoke run (CI): tiny layers, two epochs, two trials per search.
SMOKE_CONFIG = dict(shared_units=(32, 16), expert_units=16, attention_units=16, dam_shared_units=32,
                    dam_units=(32, 16), ziln_units=(32, 16), epochs=2, batch_size=256, gbdt_max_iter=20)
SMOKE_TRIALS = 2
# Full run: the paper's settings (sec. 4.1) and the protocol's defaults (selection on eval Gini, patience 10,
# a budget of max_steps optimizer steps); the searches set learning rate, width and each model's own knob.
FULL_CONFIG: Dict[str, object] = {}


def _build_online_retail(out: str, smoke: bool):
    from mean_tf.data import online_retail

    cutoffs = ("2010-11-01", "2010-12-01") if smoke else online_retail.DEFAULT_CUTOFFS
    online_retail.build(out, cutoffs=cutoffs)


def _build_cdnow(out: str, smoke: bool):
    from mean_tf.data import cdnow

    cdnow.build(out)


def _build_synthetic(out: str, smoke: bool):
    from mean_tf.data import synthetic

    synthetic.build(out, n_rows=SMOKE_SYNTHETIC[0] if smoke else SYNTHETIC_ROWS,
                    n_features=SMOKE_SYNTHETIC[1] if smoke else SYNTHETIC_FEATURES, seed=0)


SYNTHETIC_ROWS = 40_000
SYNTHETIC_FEATURES = 720
SMOKE_SYNTHETIC = (4_000, 40)  # rows, features


def settings(smoke: bool) -> Dict[str, object]:
    """What the report states about the run's configuration."""
    changes = dict(SMOKE_CONFIG if smoke else FULL_CONFIG)
    rows, features = SMOKE_SYNTHETIC if smoke else (SYNTHETIC_ROWS, SYNTHETIC_FEATURES)
    trials = SMOKE_TRIALS if smoke else tuning.TRIALS
    return {**changes, "synthetic size": f"{rows:,} rows x {features} features",
            "tuning": f"{trials} random-search trials per (dataset, model) on the eval split; protocol {PROTOCOL}: "
                      f"{PROTOCOLS[PROTOCOL]}"}


BUILDERS: Dict[str, Callable[[str, bool], None]] = {
    "online_retail_ii": _build_online_retail, "cdnow": _build_cdnow, "synthetic": _build_synthetic}


def _build_scale_set(out: str, scale_set: ScaleSet):
    from mean_tf.data import synthetic

    spec = scale_set.synthetic_spec()
    synthetic.build(out, n_rows=spec.n_rows, n_features=spec.n_features, seed=spec.seed,
                    categorical_share=spec.categorical_share, informative_numeric=spec.informative_numeric,
                    informative_categorical=spec.informative_categorical)


class Runner:
    """Runs cells under `work_dir` (datasets and Transform caches) and appends results to `results_path`.
    `dataset_paths`: datasets a user built ({name: folder}), read as they are instead of built."""

    def __init__(self, work_dir: str, results_path: str, smoke: bool = False, verbose: bool = True,
                 tuned_models: Sequence[str] = TUNED_MODELS, dataset_paths: Dict[str, str] | None = None,
                 scale_sets: Sequence[ScaleSet] = (), noise_seeds: Sequence[int] | None = None,
                 protocol: int = PROTOCOL):
        self.tuned_models = tuple(tuned_models)  # the others train with the defaults
        # The seeds of the noise cells that give a search its margin; the tuning protocol of its cells.
        self.noise_seeds = tuple(noise_seeds if noise_seeds is not None else (SMOKE if smoke else Plan()).noise_seeds)
        self.protocol = protocol
        self.dataset_paths = dict(dataset_paths or {})
        self.scale_sets = {s.dataset: s for s in scale_sets}  # the scale study's datasets
        self.work_dir = work_dir
        self.results_path = results_path
        self.smoke = smoke
        self.verbose = verbose
        self._manifests = {}

    # --- inputs -----------------------------------------------------------------------------------
    def base_config(self) -> MEANConfig:
        return MEANConfig(**(SMOKE_CONFIG if self.smoke else FULL_CONFIG))

    def manifest(self, dataset: str):
        from mean_tf.data.manifest import read_manifest

        if dataset not in self._manifests and dataset in self.dataset_paths:
            self._manifests[dataset] = read_manifest(self.dataset_paths[dataset])
        if dataset not in self._manifests:
            if dataset not in BUILDERS and dataset not in self.scale_sets:
                raise MeanTFError(f"unknown benchmark dataset {dataset!r}; choose from "
                                  f"{', '.join(dict.fromkeys([*BUILDERS, *self.scale_sets]))}")
            folder = os.path.join(self.work_dir, "data", dataset)
            if not os.path.exists(os.path.join(folder, "manifest.json")):
                self._log(f"building dataset {dataset} in {folder}")
                if dataset in BUILDERS:
                    BUILDERS[dataset](folder, self.smoke)
                else:
                    _build_scale_set(folder, self.scale_sets[dataset])
            self._manifests[dataset] = read_manifest(os.path.join(folder, "manifest.json"))
        return self._manifests[dataset]

    # --- cells ------------------------------------------------------------------------------------
    def _rows(self) -> List[dict]:
        if not os.path.exists(self.results_path):
            return []
        with open(self.results_path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

    def done_keys(self) -> set:
        """Cells that finished (ok) or cannot run on their dataset (skipped)."""
        return {r["key"] for r in self._rows() if r["status"] in ("ok", "skipped")}  # failed cells run again

    def beam_args(self, dataset: str) -> tuple:
        """The Beam arguments of `dataset`'s Transform (the scale study's large sets stream it)."""
        return self.scale_sets[dataset].beam_pipeline_args if dataset in self.scale_sets else ()

    def transform_root(self, dataset: str) -> str:
        """Where `dataset`'s Transform outputs are cached: the scale study's own sets apart, since every
        synthetic dataset has the same manifest name and features (one cache folder would be rewritten)."""
        if dataset in self.scale_sets and dataset not in BUILDERS:
            return os.path.join(self.work_dir, "scale", dataset)
        return self.work_dir

    def tuning_dataset(self, cell: Cell) -> str:
        """The dataset whose search `cell` trains with: its own, or the one its scale set names."""
        scale_set = self.scale_sets.get(cell.dataset)
        if cell.study == "scale" and scale_set is not None and scale_set.tuned_on:
            return scale_set.tuned_on
        return cell.dataset

    def tuned(self, dataset: str, model: str) -> Dict[str, object]:
        """The tuned values `model` trains with on `dataset` (running the search first if it has not run)."""
        owner = tuned_model(model, self.tuned_models)
        if not owner:
            return {}
        row = self._finished(tune_cell(dataset, owner, self.manifest(dataset).labels, self.protocol),
                             f"the search for {owner} on {dataset}")
        return dict(row["tuned"])

    def noise_margin(self, dataset: str, model: str) -> float:
        """The seed spread of `model`'s trial score at its defaults on `dataset` (`noise.margin`): the margin its
        search must beat (running the noise cells first if they have not run); NaN with fewer than two seeds."""
        for cell in noise_cells(dataset, model, self.manifest(dataset).labels, self.noise_seeds):
            self._finished(cell, f"the noise cell of {model} on {dataset} (seed {cell.seed})")
        return noise.margin(noise.per_seed(self._rows(), dataset, model))

    def _finished(self, cell: Cell, what: str) -> dict:
        """`cell`'s finished row, running it first if it has none."""
        row = next((r for r in reversed(self._rows()) if r["key"] == cell.key and r["status"] == "ok"), None)
        if row is None:
            self._log(f"{what} first")
            row = self.run_cell(cell)
            self._append(row)
            if row["status"] != "ok":
                raise MeanTFError(f"{what} did not finish: {row.get('error')}")
        return row

    def run(self, cells: Sequence[Cell]) -> List[dict]:
        done = self.done_keys()
        todo = [c for c in cells if c.key not in done]
        self._log(f"{len(cells)} cells, {len(cells) - len(todo)} already done, {len(todo)} to run")
        results, start = [], time.time()
        for i, cell in enumerate(todo, 1):
            if cell.key in self.done_keys():  # finished meanwhile by another run on the same results file
                continue
            row = self.run_cell(cell)
            self._append(row)
            results.append(row)
            elapsed = time.time() - start
            eta = elapsed / i * (len(todo) - i)
            self._log(f"[{i}/{len(todo)}] {cell.study} {cell.dataset} {cell.model} {','.join(cell.labels)} "
                      f"seed={cell.seed} {cell.variant or dict(cell.overrides) or ''} -> {row['status']} "
                      f"({row['wall_s']:.0f}s; elapsed {elapsed / 60:.1f} min, left ~{eta / 60:.1f} min)")
        return results

    def run_cell(self, cell: Cell) -> dict:
        t0 = time.time()
        row = {"key": cell.key, **cell.to_dict()}
        try:
            manifest = self.manifest(cell.dataset)
            if cell.study == "tune":
                row.update(self._search(cell, manifest), status="ok")
                row["wall_s"] = round(time.time() - t0, 2)
                return row
            if cell.study == "scale":
                row["scale"] = self._scale_info(cell, manifest)
                twin = self._table1_twin(cell)
                if twin is not None:  # the same cell, run by Table 1: counted, not run again
                    row.update({k: v for k, v in twin.items() if k not in row and k != "wall_s"}, same_as=twin["key"])
                    row["wall_s"] = round(time.time() - t0, 2)
                    return row
            y, p, extra = self._predict(cell, manifest)
            row["metrics"] = {label: metrics.evaluate(y[:, i], p[:, i]) for i, label in enumerate(cell.labels)}
            gain_label = gain_label_of(cell.labels)
            if gain_label:
                i = list(cell.labels).index(gain_label)
                share, gain = metrics.gain_curve(y[:, i], p[:, i])
                row["gain"] = {gain_label: np.interp(np.linspace(0, 1, GAIN_POINTS), share, gain).round(5).tolist()}
            row.update(extra, status="ok", n_test=int(len(y)))
            row["dataset_info"] = {"rows (train/eval/test)": "/".join(str(manifest.row_counts.get(s, "?"))
                                                                     for s in ("train", "eval", "test")),
                                   "features": len(manifest.numeric_features) + len(manifest.categorical_features)}
        except MeanTFError as e:  # the model does not apply to this dataset: recorded, not retried
            row.update(status="skipped", error=str(e))
        except Exception as e:  # noqa: BLE001 - a bug in one cell must not stop the run; retried on rerun
            last_line = (str(e).strip().splitlines() or [""])[-1]
            row.update(status="failed", error=f"{type(e).__name__}: {last_line}")
        row["wall_s"] = round(time.time() - t0, 2)
        return row

    def _scale_info(self, cell: Cell, manifest) -> dict:
        """What the scale report plots and says of a scale cell's dataset: training rows, features, how many
        features are informative (from the dataset's build info), and whose search's setting it used."""
        with open(os.path.join(manifest.root, "build_info.json"), encoding="utf-8") as f:
            info = json.load(f)
        return {"train_rows": int(manifest.row_counts["train"]), "features": int(info["n_features"]),
                "informative": [int(info["informative_numeric"]), int(info["informative_categorical"])],
                "tuned_on": self.tuning_dataset(cell)}

    def _table1_twin(self, cell: Cell):
        """Table 1's finished row of the same cell when the set uses Table 1's search, else None."""
        if self.tuning_dataset(cell) != cell.dataset:
            return None
        key = dataclasses.replace(cell, study="table1").key
        return next((r for r in reversed(self._rows()) if r["key"] == key and r["status"] == "ok"), None)

    def _predict(self, cell: Cell, manifest):
        """(y, p, extra): true and predicted money on the test split, [N, H] each, in `cell.labels` order."""
        from mean_tf.data.manifest import read_split

        labels = list(cell.labels)
        if cell.model == "oracle":
            if not manifest.oracle_columns:
                raise MeanTFError(f"dataset {cell.dataset} has no oracle columns")
            oracle = [manifest.oracle_columns[label] for label in labels]
            test = read_split(manifest, "test", columns=labels + oracle)
            return test[labels].to_numpy(float), test[oracle].to_numpy(float), {}
        tuned = self.tuned(self.tuning_dataset(cell), cell.model) if cell.study in TUNED_STUDIES else {}
        config = tuning.apply(self.base_config(), tuned).replace(seed=cell.seed, labels=tuple(labels),
                                                                 **dict(cell.overrides))
        outcome = fit_predict.run(cell.model, config, manifest, self.transform_root(cell.dataset), with_eval=True,
                                  beam_pipeline_args=self.beam_args(cell.dataset))
        extra = {"tuned": tuned, "eval_metrics": _metrics(outcome.eval)}
        calibrated = fit_predict.calibrated(outcome, config)
        if calibrated is not None:  # the money calibration the serving model carries (fitted on eval)
            extra["calibrated_metrics"] = _metrics(calibrated)
            extra["calibration"] = {label: c.method for label, c in calibrated.calibrations.items()}
        if outcome.model is not None and hasattr(outcome.model, "mvfe"):  # MEAN family: where its errors come from
            extra["diagnostics"] = self._diagnostics(cell, config, manifest, outcome.model)
        if outcome.fit is not None:
            fit = outcome.fit
            extra.update(best_epoch=int(fit.best_epoch), epochs_run=len(fit.history.get("loss", [])),
                         fit={"steps": fit.steps, "hit_max_steps": fit.hit_max_steps, "selection": fit.selection,
                              "bn_momentum": training_bn_momentum(fit.config, fit.facts), "history": _rounded(fit.history)})
        return outcome.y, outcome.p, extra

    def _diagnostics(self, cell: Cell, config, manifest, model) -> dict:
        """`mean_tf.evaluation.explain.diagnostics` on the test split, for the cell's target label."""
        from mean_tf.evaluation import explain
        from mean_tf.training import protocol

        mat = fit_predict.materialize_cached(manifest, config, self.transform_root(cell.dataset),
                                             self.beam_args(cell.dataset))
        data = protocol.make_dataset(mat.files("test"), mat.tf_transform_output().transformed_feature_spec(),
                                     list(model.config.labels), config.batch_size)
        label = primary_label(model.config.labels)
        return explain.diagnostics(model, data, label)

    def _search(self, cell: Cell, manifest) -> dict:
        """One KerasTuner search with the rule of `mean_tf.training.tuning`: trials scored on the eval split (a
        network by the mean of its best epochs' selection criterion, the tree by its eval Gini, mean over the
        cell's labels), the defaults kept unless the best beats them by the noise study's seed spread."""
        base = self.base_config().replace(seed=cell.seed, labels=tuple(cell.labels))
        margin = self.noise_margin(cell.dataset, cell.model)
        rule_margin = margin if np.isfinite(margin) else 0.0  # fewer than two noise seeds: the best trial

        def trial(config):
            outcome = fit_predict.run(cell.model, config, manifest, self.transform_root(cell.dataset), split="eval",
                                      beam_pipeline_args=self.beam_args(cell.dataset))
            if outcome.fit is not None:
                return tuning.fit_score(outcome.fit.history, config.selection_metric)
            scores = [metrics.normalized_gini(outcome.y[:, i], outcome.p[:, i]) for i in range(len(cell.labels))]
            return float(np.mean(scores))

        folder = os.path.join(self.work_dir, "tuning", cell.dataset) + (f"-protocol{cell.protocol}"
                                                                         if cell.protocol != 1 else "")
        trials = SMOKE_TRIALS if self.smoke else tuning.TRIALS
        tuner = tuning.make_tuner(cell.model, trial, base, folder, cell.model, max_trials=trials, seed=cell.seed,
                                  margin=rule_margin)
        tuner.search()
        summary = tuning.trials_summary(tuner)
        choice = tuning.choose(summary, tuning.default_values(cell.model, base), rule_margin)
        return {"tuned": choice.values, "eval_score": choice.score, "trials": summary, "trial_count": len(summary),
                "choice": {"adopted": choice.adopted, "best": choice.best_score, "default": choice.default_score,
                           "runner_up": choice.runner_up_score, "margin": margin}}

    def _append(self, row: dict) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.results_path)), exist_ok=True)
        with open(self.results_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, default=float) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def _log(self, message: str) -> None:
        if self.verbose:
            print(message, file=sys.stderr, flush=True)


def gain_label_of(labels: Sequence[str]):
    """The label whose gain curve a cell records: cltv_365, or a label that is not one of the four horizons
    (a user dataset's own, e.g. Criteo-SSC's conversion_value); None otherwise."""
    return next((label for label in labels if label == TUNE_LABEL or label not in LABELS), None)


def _metrics(outcome) -> Dict[str, Dict[str, float]]:
    return {label: metrics.evaluate(outcome.y[:, i], outcome.p[:, i]) for i, label in enumerate(outcome.labels)}


def _rounded(history: Dict[str, list]) -> Dict[str, list]:
    """Per-epoch curves of every logged term, rounded for the results file."""
    return {k: [round(float(v), 6) for v in values] for k, values in history.items()}


def environment() -> Dict[str, str]:
    """Hardware and versions for the report header."""
    import apache_beam
    import tensorflow as tf
    import tensorflow_model_analysis as tfma
    import tensorflow_transform as tft
    import tfx

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"hardware": f"{os.cpu_count()} CPU cores ({cpu}), no GPU",
            "versions": f"Python {platform.python_version()}, TensorFlow {tf.__version__}, TFX {tfx.__version__}, "
                        f"TFT {tft.__version__}, TFMA {tfma.__version__}, Beam {apache_beam.__version__}"}
