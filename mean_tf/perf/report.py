"""Render `docs/performance.md` from the results folder of `mean-tf perf ...`. Every number comes from a
results file; the page says so and is never edited by hand."""
from __future__ import annotations

import os
from typing import Dict, List, Optional

from mean_tf.perf import results as res
from mean_tf.perf.projection import PROJECTION_ASSUMPTIONS, component, project

GOALS = {
    "roofline": 0.40,  # MEAN's share of its matmul roofline (CPU)
    "vs_ziln": 0.5,  # MEAN examples/s over DNN-ZILN's
    "input": 3.0,  # input pipeline examples/s over MEAN training examples/s
    "serving_ms": 5.0,  # batch-1 p50
    "score_memory": 1.5,  # `mean-tf score` peak memory at the largest size over the smallest
}

BEAM_RUNNERS = """\
| runner | `--beam_pipeline_args` (ExampleGen, StatisticsGen, Transform, Evaluator) |
|---|---|
| Direct, multi-process (this page) | `--runner=DirectRunner --direct_running_mode=multi_processing --direct_num_workers=2` |
| Dataflow | `--runner=DataflowRunner --project=P --region=R --temp_location=gs://B/tmp --staging_location=gs://B/staging --machine_type=n2-standard-8 --max_num_workers=N --autoscaling_algorithm=THROUGHPUT_BASED --experiments=use_runner_v2 --sdk_container_image=IMAGE` |
| Flink | `--runner=FlinkRunner --flink_master=HOST:8081 --environment_type=DOCKER --environment_config=IMAGE --parallelism=N` (or `--environment_type=EXTERNAL --environment_config=localhost:50000` with a worker pool) |
| Spark | `--runner=SparkRunner --spark_master_url=spark://HOST:7077 --environment_type=DOCKER --environment_config=IMAGE` (portable Spark job server; or `--runner=PortableRunner --job_endpoint=HOST:8099`) |
"""

VERTEX_TRAINING = """\
Training goes multi-worker from `TF_CONFIG` alone: `mean_tf.training.strategy_from_env` picks
`tf.distribute.MultiWorkerMirroredStrategy` when `TF_CONFIG` names a cluster, and `mean_tf.trainer.run_fn`
lets only the chief (or worker 0) write the servable model. Vertex AI Training sets `TF_CONFIG` on each replica
of a custom job, so the TFX Trainer runs distributed with a worker pool spec such as
`{"machine_spec": {"machine_type": "n2-standard-16"}, "replica_count": 1}` (chief) plus
`{"machine_spec": {"machine_type": "n2-standard-16"}, "replica_count": 3}` (workers), all with the pipeline's
image; in TFX, pass them as `custom_config[tfx.extensions.google_cloud_ai_platform.TRAINING_ARGS_KEY] =
{"project": P, "worker_pool_specs": [...]}` to the Vertex Trainer component. Locally, `tests/test_distributed.py`
starts two worker processes on 127.0.0.1 with free ports and checks that they train one model whose metrics match
single-worker training; `config.batch_size` is the global batch (each of k workers computes batch/k).
Each replica's loss is the mean over its share of the batch, and the replicas' gradients are summed, so
`CLTVModel.train_step` divides the loss by the number of replicas: the step is the one-device step on the global
batch (`tests/test_mean_model.py` checks one SGD step on two mirrored replicas against one device). MEAN's experts
normalise with each replica's own batch statistics (plain BatchNormalization), as data-parallel Keras does by
default; with k replicas that is batch/k rows per statistic.
"""


def _fmt(x, digits=1, unit=""):
    if x is None:
        return "—"
    if isinstance(x, float):
        if abs(x) >= 1000:
            return f"{x:,.0f}{unit}"
        return f"{x:.{digits}f}{unit}"
    return f"{x}{unit}"


def _met(ok: Optional[bool]) -> str:
    return "—" if ok is None else ("**met**" if ok else "**not met**")


def _environment(sources: List[Dict]) -> List[str]:
    env = next((s["environment"] for s in sources if s and "environment" in s), None)
    if env is None:
        return ["No results yet: run `mean-tf perf all`."]
    v = env["versions"]
    lines = [
        "| | |", "|---|---|",
        f"| CPU | {env['cpu']} ({env['cores']} cores visible; {', '.join(env['cpu_flags']) or 'no AVX'}) |",
        f"| memory | {env['memory_gib']} GiB |",
        f"| platform | {env['platform']} |",
        f"| accelerator | none (the device tool lent no GPU to this task) |",
        "| versions | " + ", ".join(f"{k} {val}" for k, val in v.items()) + " |",
        f"| TensorFlow threads | intra-op {env['tf_threads'].get('intra_op', 0)}, inter-op "
        f"{env['tf_threads'].get('inter_op', 0)} (0 = TensorFlow's default: one per core) |",
        f"| git commit | {env['git_commit']} |",
    ]
    loads = []
    for s in sources:
        if not s or "environment" not in s:
            continue
        if "runs" not in s:
            loads.append((s.get("command"), "", s["environment"].get("load_average"), s.get("load_average_after")))
            continue
        for r in s["runs"]:  # benchmark 4: the load when its session started, and after each size
            session = r.get("session", s)
            loads.append((session["command"], f" at {r['rows']:,} rows", session["environment"].get("load_average"),
                          r.get("load_average_after")))
    lines += ["", "Machine load (1/5/15-minute load average before and after each run; the machine is shared with "
              "other work, so a load above 2 on 2 cores means the benchmark got less than the whole CPU and "
              "every rate below is a lower bound):", ""]
    lines += [f"- `{cmd}`{size}: {before} → {after}" for cmd, size, before, after in loads]
    return lines


def _ratio_explanation(models: List[Dict]) -> List[str]:
    """Why MEAN runs at the speed it does next to DNN-ZILN: the FLOP ratio bounds the example-rate ratio."""
    by = {m["model"]: m for m in models}
    if "mean" not in by or "dnn_ziln" not in by:
        return []
    mean, ziln = by["mean"], by["dnn_ziln"]
    flop_ratio = ziln["train_flops_per_example"] / mean["train_flops_per_example"]
    lines = []
    for mode in ("in_memory", "streamed"):
        measured = mean[mode]["examples_per_s"] / ziln[mode]["examples_per_s"]
        efficiency = mean[mode]["roofline_share"] / ziln[mode]["roofline_share"]
        lines.append(f"{mode.replace('_', '-')}: MEAN/DNN-ZILN = {measured:.2f}× = FLOP ratio {flop_ratio:.2f} × "
                     f"roofline-share ratio {efficiency:.2f} × matmul-rate ratio at their shapes "
                     f"{mean['roofline']['gflops_per_s'] / ziln['roofline']['gflops_per_s']:.2f}")
    return ["", f"Why MEAN trains at this rate next to DNN-ZILN: a MEAN training step needs "
                f"{1 / flop_ratio:.2f}× DNN-ZILN's FLOPs per example (five experts and their gates, the attention, "
                f"and one DAM tower per horizon that reads the input features), so even at DNN-ZILN's efficiency it "
                f"would run at {flop_ratio:.2f}× its examples/s. The rest of the gap is efficiency: "
                + "; ".join(lines) + ". Both models spend most of their op time in matmul kernels (profiles below), "
                "so the remaining lever is fewer FLOPs (smaller experts or DAM towers: a quality trade-off the "
                "benchmark would have to justify) rather than less overhead."]


def _train_section(train: Optional[Dict], experiments: List[Dict]) -> List[str]:
    out = ["## 1. Training throughput and the matmul roofline", ""]
    if not train:
        return out + ["Not run yet: `mean-tf perf train`.", ""]
    d = train["data"]
    out += [f"Command: `{train['command']}`", "",
            f"Data: synthetic, {d['rows']:,} rows × {d['features']} features ({d['numeric_features']} numeric, "
            f"{d['categorical_features']} categorical, embedded 8-wide), {d['train_rows']:,} train rows as gzipped "
            f"TFRecords, read through `mean_tf.training.make_dataset` (Transform output). Batch "
            f"{train['batch_size']}, Adam, {train['models'][0]['streamed']['steps']} timed steps after "
            f"{train['models'][0]['streamed']['warmup']} warm-up steps; XLA `jit_compile`={train['jit_compile']}.",
            "",
            "| model | params | train MFLOP/example | streamed ex/s | in-memory ex/s | achieved GFLOP/s | "
            "matmul roofline GFLOP/s | roofline share (streamed / in-memory) | ex/s vs DNN-ZILN (streamed) |",
            "|---|---|---|---|---|---|---|---|---|"]
    for m in train["models"]:
        s, mem, roof = m["streamed"], m["in_memory"], m["roofline"]
        out.append(f"| {m['model']} | {m['parameters']:,} | {m['train_flops_per_example'] / 1e6:.2f} | "
                   f"{_fmt(s['examples_per_s'])} | {_fmt(mem['examples_per_s'])} | {_fmt(mem['achieved_gflops_per_s'])} | "
                   f"{_fmt(roof['gflops_per_s'])} | {s['roofline_share']:.0%} / {mem['roofline_share']:.0%} | "
                   f"{_fmt(s.get('vs_dnn_ziln'), 2)} |")
    out += _ratio_explanation(train["models"])
    if any(m["in_memory"]["roofline_share"] > 1.0 for m in train["models"]):
        out += ["", "A share above 100 % cannot be real: the ops were timed alone at a moment when the shared machine "
                    "was busier than while the model trained, so on this machine the roofline itself is uncertain "
                    "by that much (compare the three models' roofline GFLOP/s, measured minutes apart)."]
    out += ["", f"Peak dense matmul rate of this machine in the same run ({train.get('peak_matmul_size', 1024)}³ float32): "
                f"{_fmt(train['peak_matmul_gflops_per_s'])} GFLOP/s.", "",
            "FLOPs are counted from the traced training step (`mean_tf.perf.flops`): 2 × the product of the index "
            "sizes of every MatMul / BatchMatMul / Einsum the gradients depend on (forward and backward; the unused "
            "input gradient is pruned). The roofline (`mean_tf.perf.roofline`) times each of those ops alone at its "
            "shape on this machine and adds them up: the step time if the model did nothing but its matmuls. "
            "Roofline share = that time / the measured step time. \"in-memory\" repeats 4 cached batches (the model "
            "step alone); \"streamed\" reads the TFRecords while training (2 cores shared by both).", ""]
    mean = next((m for m in train["models"] if m["model"] == "mean"), None)
    if mean:
        out += ["MEAN's slowest matmuls at their shapes (the roofline's largest terms):", "",
                "| op | count | GFLOP/s alone | ms per step |", "|---|---|---|---|"]
        for row in mean["roofline"]["ops"][:8]:
            out.append(f"| `{row['op']}` | {row['count']} | {row['gflops_per_s']:.1f} | "
                       f"{row['count'] * row['seconds'] * 1e3:.2f} |")
        out.append("")
    for name, prof in ((m["model"], m.get("profile") or {}) for m in train["models"]):
        if "top_op_types" not in prof:
            continue
        out += [f"Profile of {name} (TensorFlow profiler, {prof['steps']} in-memory steps; op time summed over "
                f"threads per step: {prof['op_seconds_per_step'] * 1e3:.1f} ms, wall {prof['wall_seconds_per_step'] * 1e3:.1f} ms; "
                f"matmul/einsum kernels {prof['matmul_share_of_op_time']:.0%} of op time):", "",
                "| op type | ms per step | share |", "|---|---|---|"]
        out += [f"| {r['type']} | {r['seconds_per_step'] * 1e3:.2f} | {r['share']:.0%} |" for r in prof["top_op_types"][:10]]
        out.append("")
    if experiments:
        out += ["### Experiments (before / after)", "",
                "Each row is one run of `mean-tf perf train` with one setting changed; the baseline is the table "
                "above. Rates from runs at different machine loads are not comparable; the ratio within a run is. "
                "A change is kept only if it is faster at the same load.", "",
                "| experiment | command | MEAN in-memory ex/s | DNN-ZILN in-memory ex/s | MEAN / DNN-ZILN (in-memory) | "
                "MEAN streamed ex/s | load before → after | note |",
                "|---|---|---|---|---|---|---|---|"]
        base = {m["model"]: m for m in train["models"]}
        rows = [("baseline", train)] + [(e.get("tag", "?"), e) for e in experiments]
        for tag, e in rows:
            by = {m["model"]: m for m in e["models"]}
            mean_rate, ziln_rate = _get(by, 'mean', 'in_memory'), _get(by, 'dnn_ziln', 'in_memory')
            ratio = mean_rate / ziln_rate if mean_rate and ziln_rate else None
            loads = f"{e['environment']['load_average'][:1]} → {e.get('load_average_after', [])[:1]}"
            out.append(f"| {tag} | `{e['command']}` | {_fmt(mean_rate)} | {_fmt(ziln_rate)} | {_fmt(ratio, 2)} | "
                       f"{_fmt(_get(by, 'mean', 'streamed'))} | {loads} | {e.get('note', '')} |")
        del base
        out.append("")
    return out


def _get(by, model, mode):
    m = by.get(model)
    return m[mode]["examples_per_s"] if m else None


def _input_section(inp: Optional[Dict], train: Optional[Dict]) -> List[str]:
    out = ["## 2. Input pipeline", ""]
    if not inp:
        return out + ["Not run yet: `mean-tf perf input`.", ""]
    mean_rate = _train_rate(train, "mean", "streamed")
    out += [f"Command: `{inp['command']}`", "",
            f"TFRecord → parsed, transformed batches of {inp['batch_size']}, nothing else running in the process "
            f"({inp['variants']['training']['batches']} batches after {inp['variants']['training']['warmup']} warm-up).",
            "", "| pipeline | examples/s | × MEAN training (streamed) |", "|---|---|---|"]
    for name, v in inp["variants"].items():
        ratio = v["examples_per_s"] / mean_rate if mean_rate else None
        out.append(f"| `{name}` | {_fmt(v['examples_per_s'])} | {_fmt(ratio, 1)} |")
    out += ["", "`training` is `mean_tf.training.make_dataset` as training uses it (shuffle buffer, batch, then one "
                "`parse_example` per batch on parallel map calls, prefetch); `no_shuffle` is the same without the "
                "shuffle buffer (evaluation); `parallel_reads` reads the files through a parallel interleave (not "
                "deterministic; training keeps the ordered pipeline, which already outruns the model).", ""]
    return out


def _train_rate(train, model, mode):
    if not train:
        return None
    by = {m["model"]: m for m in train["models"]}
    return by[model][mode]["examples_per_s"] if model in by else None


def _serving_section(srv: Optional[Dict]) -> List[str]:
    out = ["## 3. Serving latency", ""]
    if not srv:
        return out + ["Not run yet: `mean-tf perf serving`.", ""]
    out += [f"Command: `{srv['command']}`", "",
            f"`serving_default` of the exported {srv['export']['model']} model (label {srv['export']['label']}): "
            f"serialized raw tf.Example ({srv['data']['features']} features) → parse → Transform graph → model → money. "
            f"Loaded with `tf.compat.v1.saved_model.loader.load` into a Session (TF Serving's path; load took "
            f"{srv['load_seconds']:.1f} s); one `Session.run` per request through a callable made once.", "",
            "| batch | requests | p50 ms | p99 ms | examples/s at p50 |", "|---|---|---|---|---|"]
    for b, r in sorted(srv["batch_sizes"].items(), key=lambda kv: int(kv[0])):
        out.append(f"| {b} | {r['requests']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {_fmt(r['examples_per_s'])} |")
    out.append("")
    return out


def _score_section(score: Optional[Dict]) -> List[str]:
    out = ["## 5. Batch scoring (`mean-tf score`)", ""]
    if not score:
        return out + ["Not run yet: `mean-tf perf score`.", ""]
    out += [f"Command: `{score['command']}`", "",
            f"`mean-tf score` with the exported {score['export']['model']} model (label {score['export']['label']}) "
            f"on the train split of synthetic datasets of {score['data']['features']} features, each size in a "
            "fresh process; peak memory is the process's resident set, sampled every 0.2 s. The output is Parquet, "
            "written in batches; only the predictions (8 bytes per customer) stay in memory, to rank.", "",
            "| customers | wall s | customers/s | peak MiB | load average before → after |", "|---|---|---|---|---|"]
    for r in score["scoring_runs"]:
        out.append(f"| {r['customers']:,} | {r['wall_seconds']:.1f} | {_fmt(r['customers_per_s'])} | "
                   f"{r['peak_rss_mib']:,.0f} | {r['load_average_before']} → {r['load_average_after']} |")
    return out + ["", "Times are upper bounds when the load average exceeds the 2 cores.", ""]


def _score_memory(score: Optional[Dict]):
    """(largest run's peak / smallest run's peak, text) or None."""
    runs = sorted(score["scoring_runs"], key=lambda r: r["customers"]) if score else []
    if len(runs) < 2:
        return None
    ratio = runs[-1]["peak_rss_mib"] / runs[0]["peak_rss_mib"]
    return ratio, (f"{ratio:.2f}× ({runs[0]['peak_rss_mib']:,.0f} MiB at {runs[0]['customers']:,} customers, "
                   f"{runs[-1]['peak_rss_mib']:,.0f} MiB at {runs[-1]['customers']:,})")


def _example_gen(record: Dict) -> str:
    # Records written before the switch existed have no key: they ran TFX's stock ImportExampleGen.
    if record.get("shuffle_examples", True):
        return "TFX's stock ImportExampleGen (a Reshuffle of every split)"
    return "ImportExampleGen copying the split files (`pipeline.example_gen`)"


def _pipeline_runs_table(records: List[Dict]) -> List[str]:
    """ExampleGen, Transform and the whole run per record and size: this page's record against earlier ones."""
    out = ["| record | ExampleGen | rows | ImportExampleGen s / peak GiB | Transform s / peak GiB | "
           "whole run s / peak GiB | commit |", "|---|---|---|---|---|---|---|"]
    for label, record in records:
        for r in sorted(record["runs"], key=lambda r: r["rows"]):
            cells = []
            for name in ("ImportExampleGen", "Transform"):
                c = component(r, name)
                cells.append(f"{c['seconds']:.0f} / {c['peak_rss_gib']:.2f}" if c else "—")
            out.append(f"| {label} | {_example_gen(record)} | {r['rows']:,} | {' | '.join(cells)} | "
                       f"{r['wall_seconds']:.0f} / {r['peak_rss_gib']:.2f} | "
                       f"{r.get('session', record)['environment'].get('git_commit', '?')} |")
    return out + [""]


def _sessions(pipe: Dict) -> List[Dict]:
    """The distinct sessions (command and environment) the record's runs ran in, oldest first."""
    by_key = {}
    for r in pipe["runs"]:
        session = r.get("session", pipe)
        by_key.setdefault((session["command"], session["environment"].get("time")), session)
    return sorted(by_key.values(), key=lambda s: s["environment"].get("time", ""))


def _session_label(session: Dict) -> str:
    env = session["environment"]
    return f"{env.get('time', '?')}, {env.get('git_commit', '?')}"


def _pipeline_section(pipe: Optional[Dict], proj: Optional[Dict], experiments: List[Dict]) -> List[str]:
    """Benchmark 4; `proj` is `project(pipe, ...)`, None with fewer than two sizes."""
    out = ["## 4. Pipeline scaling", ""]
    if not pipe:
        return out + ["Not run yet: `mean-tf perf pipeline`.", ""]
    runs = pipe["runs"]
    components = []
    for r in runs:
        for c in r["components"]:
            if c["name"] not in components:
                components.append(c["name"])
    out += [f"Command: `{pipe['command']}`", "",
            f"The full local TFX pipeline (`pipeline/local_runner.py`) with Beam DirectRunner "
            f"`{' '.join(pipe['beam_pipeline_args'])}`, model `{pipe['model']}`, on synthetic data of "
            f"{pipe['features']} features. Wall time per component from ML Metadata; peak resident memory of the "
            f"whole process tree (runner + Beam workers), sampled every {pipe['sample_seconds']} s. "
            f"ExampleGen: {_example_gen(pipe)}.", ""]
    head = "| component | " + " | ".join(f"{r['rows']:,} rows: s / peak GiB" for r in runs) + " |"
    out += [head, "|---|" + "---|" * len(runs)]
    for name in components:
        cells = []
        for r in runs:
            c = component(r, name)
            cells.append(f"{c['seconds']:.0f} / {c['peak_rss_gib']:.2f}" if c else "—")
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    out.append("| **total** | " + " | ".join(f"{r['wall_seconds']:.0f} / {r['peak_rss_gib']:.2f}" for r in runs) + " |")
    out.append("| load average after the run | " + " | ".join(", ".join(map(str, r.get("load_average_after", [])))
                                                           for r in runs) + " |")
    sessions = _sessions(pipe)
    if len(sessions) > 1:
        out.append("| session (start, commit) | " + " | ".join(_session_label(r.get("session", pipe)) for r in runs)
                   + " |")
    out.append("")
    if len(sessions) > 1:
        out += [f"The sizes ran in {len(sessions)} sessions on this machine (`--extend` adds sizes to a saved record "
                "of the same setup): " + "; ".join(f"{_session_label(s)}: `{s['command']}`" for s in sessions)
                + ". The machine's speed can differ between sessions (the Trainer check under Earlier records "
                "compares records at a shared size); the fitted lines take such differences as noise.", ""]
    if pipe.get("not_run"):
        out += [f"Not run (the reason given with the command, before it ran): {pipe['not_run']}", ""]
    if pipe.get("pending"):
        out += [f"Not finished: {', '.join(f'{n:,}' for n in pipe['pending'])} rows (the command had not finished "
                "them when this record was written: it was stopped or is still running).", ""]
    if proj:
        out += ["### Per-row cost and the 22M-row projection", "",
                "Per component, a straight line seconds = fixed + per_row × rows through the measured sizes "
                "(fixed: start-up and the Beam graph; per_row: the part that grows with the data).", "",
                f"| component | fixed s | per-row ms ({pipe['features']} features, 2 local cores) | basis | growth "
                "between the two largest runs (× rows → × time) | peak memory between them |",
                "|---|---|---|---|---|---|"]
        for c in proj["components"]:
            grows = " (**grows**)" if c["memory_grows"] else ""
            out.append(f"| {c['name']} | {c['fixed_seconds']:.0f} | {c['per_row_ms']:.3f} | {c['basis']} | "
                       f"{c['growth']} | {c['memory']}{grows} |")
        out += [""] + ([proj["prediction"], ""] if proj["prediction"] else [])
        out += [proj["text"], "", "Assumptions: " + PROJECTION_ASSUMPTIONS, ""]
    if experiments:
        out += ["### Earlier records (before / after)", "",
                "The same benchmark from earlier commits (`" + "`, `".join(e["_file"] for e in experiments) + "`). "
                "TFX's ImportExampleGen reshuffles every split before writing it; on the DirectRunner a Reshuffle is "
                "a GroupByKey held in the runner's memory, so ExampleGen's peak memory grew with the rows. The "
                "copying executor writes no record itself: it copies the dataset's gzipped split files.", ""]
        out += _pipeline_runs_table([(e["_file"], e) for e in experiments] + [("this page", pipe)])
        out += _machine_check(experiments, pipe)
    return out


def _machine_check(experiments: List[Dict], pipe: Dict, reference: str = "Trainer") -> List[str]:
    """The Trainer's time ratio against each earlier record at a shared size: ExampleGen does not touch it."""
    def seconds(record, rows):
        run = next((r for r in record["runs"] if r["rows"] == rows), None)
        c = component(run, reference) if run else None
        return c["seconds"] if c else None

    out = []
    for e in experiments:
        for rows in sorted({r["rows"] for r in e["runs"]} & {r["rows"] for r in pipe["runs"]}):
            before, after = seconds(e, rows), seconds(pipe, rows)
            if before and after:
                out.append(f"At {rows:,} rows the {reference}, which ExampleGen does not touch (it reads "
                           f"Transform's output), took ×{after / before:.2f} the time of `{e['_file']}`: differences "
                           "of about that size between the records are the machine's speed on the day, not the "
                           "change's.")
    return out + [""] if out else []


def _goals(train, inp, srv, pipe, proj, score=None) -> List[str]:
    mean = next((m for m in train["models"] if m["model"] == "mean"), None) if train else None
    rows = []
    if mean:
        share = mean["in_memory"]["roofline_share"]
        rows.append(("MEAN ≥ 40 % of the matmul roofline (CPU)", f"{share:.0%} in-memory, "
                     f"{mean['streamed']['roofline_share']:.0%} streamed", share >= GOALS["roofline"]))
        vs = mean["in_memory"].get("vs_dnn_ziln")
        if vs is not None:
            rows.append(("MEAN ≥ 0.5 × DNN-ZILN examples/s", f"{vs:.2f}× in-memory, {mean['streamed']['vs_dnn_ziln']:.2f}× "
                         "streamed", vs >= GOALS["vs_ziln"]))
    else:
        rows.append(("training throughput", "not run", None))
    rate = _train_rate(train, "mean", "streamed")
    if inp and rate:
        best = inp["variants"]["training"]["examples_per_s"] / rate
        rows.append(("input pipeline ≥ 3 × training throughput", f"{best:.1f}×", best >= GOALS["input"]))
    else:
        rows.append(("input pipeline ≥ 3 × training throughput", "not run", None))
    if srv:
        p50 = srv["batch_sizes"].get("1", {}).get("p50_ms")
        rows.append(("serving batch-1 p50 ≤ 5 ms", f"{p50:.2f} ms" if p50 is not None else "not run",
                     None if p50 is None else p50 <= GOALS["serving_ms"]))
    else:
        rows.append(("serving batch-1 p50 ≤ 5 ms", "not run", None))
    if pipe:
        rows.append(("pipeline time linear in rows, memory flat",
                     proj["verdict"] if proj else "fewer than two sizes", proj["linear_and_flat"] if proj else None))
    else:
        rows.append(("pipeline time linear in rows, memory flat", "not run", None))
    memory = _score_memory(score)
    rows.append((f"`mean-tf score` peak memory at the largest size ≤ {GOALS['score_memory']} × the smallest",
                 memory[1] if memory else "not run", memory[0] <= GOALS["score_memory"] if memory else None))
    rows.append(("GPU run of benchmark 1 (mixed precision / XLA)", "not measured: no GPU lent to this task", None))
    return ["## Goals", "", "| goal | measured | |", "|---|---|---|"] + [f"| {g} | {m} | {_met(ok)} |" for g, m, ok in rows] + [""]


def render(results_dir: str, flags: str = "") -> str:
    """The report's Markdown; `flags` (e.g. " --write-docs") completes the commands its header names."""
    train = res.read_result(results_dir, "train")
    experiments = [e for e in res.read_experiments(results_dir, "train")]
    inp = res.read_result(results_dir, "input")
    srv = res.read_result(results_dir, "serving")
    pipe = res.read_result(results_dir, "pipeline")
    score = res.read_result(results_dir, "score")
    lines = ["# mean-tf performance", "",
             f"<!-- Generated by `mean-tf perf report{flags}` from the JSON files in `{results_dir}`; do not edit by "
             f"hand: rerun the benchmarks (`mean-tf perf all{flags}`) and the report instead. -->", "",
             f"Benchmarks of issue 9, measured on the machine below. Reproduce with `mean-tf perf all{flags}` (each "
             f"part alone: `mean-tf perf train|input|serving|pipeline|score{flags}`), then `mean-tf perf report{flags}`.", "",
             "## Hardware and software", ""]
    lines += _environment([r for r in (train, inp, srv, pipe, score) if r] + experiments) + [""]
    proj = project(pipe, _train_rate(train, "mean", "streamed")) if pipe else None
    lines += _goals(train, inp, srv, pipe, proj, score)
    lines += _train_section(train, experiments)
    lines += _input_section(inp, train)
    lines += _serving_section(srv)
    lines += _pipeline_section(pipe, proj, res.read_experiments(results_dir, "pipeline"))
    lines += _score_section(score)
    lines += ["## 6. GPU", "", "Not measured: no GPU was lent to this task. On a machine with one, "
              "`mean-tf perf train --tag gpu` and `mean-tf perf train --jit --tag gpu-xla` record it (the results "
              "name the device).", "",
              "## Distributed training (Vertex AI Training)", "", VERTEX_TRAINING,
              "## Beam runners for the data components", "", BEAM_RUNNERS]
    return "\n".join(lines)


def write_report(results_dir: str, out_path: str, flags: str = "") -> str:
    text = render(results_dir, flags)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w", encoding="utf-8") as f:
        f.write(text)
    return out_path
