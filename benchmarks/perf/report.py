"""Render `docs/performance.md` from the results folder of `python -m benchmarks.perf ...`: the answer and the goals table, one
short table per benchmark, then an appendix with every command once (keyed [1], [2], ... in the tables), the
machine and its load. Every number comes from a results file; the page is never edited by hand."""
from __future__ import annotations

import collections
import shlex
from datetime import datetime
from typing import Dict, List, Optional

from benchmarks.perf import results as res
from benchmarks.perf.profile import IMPORTING
from benchmarks.perf.projection import (LARGEST_ROWS, MIN_COMPONENT_SECONDS, PAPER_FEATURES, PROJECTION_ASSUMPTIONS,
                                        component, project)
from mean_tf.evaluation.tables import markdown_table
from mean_tf.runtime.files import write_text

# Roofline share, MEAN over DNN-ZILN examples/s, input over training examples/s, batch-1 serving p50 ms,
# `mean-tf score` peak memory largest over smallest size; the 1M-row pipeline and Transform.
GOALS = {"roofline": 0.40, "vs_ziln": 0.5, "input": 3.0, "serving_ms": 5.0, "score_memory": 1.5,
         "pipeline_s": 1500.0, "pipeline_gib": 8.0, "transform_fixed_s": 90.0, "transform_gib": 3.0}
# Options of `python -m benchmarks.perf train` that change what is measured; a run with none of them is a baseline.
SETTINGS = ("--jit", "--deterministic", "--set", "--intra-op", "--inter-op")


def _fmt(x, digits=1):
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.{digits}f}"
    return f"{x}"


def _met(ok: Optional[bool]) -> str:
    return "—" if ok is None else ("**met**" if ok else "**not met**")


def _load(values) -> str:
    return ", ".join(str(v) for v in values) if values else "?"


def _cell(entry: Optional[Dict], seconds="seconds") -> str:
    return f"{entry[seconds]:,.0f} / {entry['peak_rss_gib']:.2f}" if entry else "—"


def _rate(record: Optional[Dict], model: str, mode: str) -> Optional[float]:
    m = next((m for m in record["models"] if m["model"] == model), None) if record else None
    return m[mode]["examples_per_s"] if m else None


def _table(head: List[str], rows: List[List]) -> List[str]:
    return markdown_table(head, rows) + [""]


class _Commands:
    """The commands the page cites, keyed [1], [2], ... in the order they are first cited, with the machine load."""

    def __init__(self):
        self.rows: Dict[str, Dict] = {}

    def cite(self, session: Dict, after=None, at: str = "") -> str:
        row = self.rows.setdefault(session["command"], {"key": f"[{len(self.rows) + 1}]", "after": {},
                                                       "env": session.get("environment", {})})
        after = after or session.get("load_average_after")
        if after:
            row["after"][at] = after
        return row["key"]

    def listing(self) -> List[str]:
        out = []
        for command, r in self.rows.items():
            env, after = r["env"], "; ".join(f"{_load(v)}{at}" for at, v in r["after"].items())
            out.append(f"- **{r['key']}** `{command}`  \n  started {env.get('time', '?')} at "
                       f"{env.get('git_commit', '?')}; load {_load(env.get('load_average'))} → {after or '?'}")
        return out + [""]


def _note(record: Dict) -> List[str]:
    """The note given with the command that wrote `record` (`--note`)."""
    return [f"Note given with the command: {record['note']}", ""] if record.get("note") else []


def _not_run(title: str, part: str) -> List[str]:
    return [title, "", f"Not run yet: `python -m benchmarks.perf {part}`.", ""]


def _pipeline_goals(pipe: Dict, proj: Optional[Dict], cmds: _Commands):
    """The answer paragraph, the pipeline goals, and why the whole-run goal is out of reach ("" if it is not)."""
    runs = sorted(pipe["runs"], key=lambda x: x["rows"])
    for x in runs:  # the pipeline's sessions first: [1], [2], ... in the order of their sizes
        cmds.cite(x.get("session", pipe))
    run = next((x for x in runs if x["rows"] == LARGEST_ROWS), runs[-1])
    key, wall, peak = cmds.cite(run.get("session", pipe)), run["wall_seconds"], run["peak_rss_gib"]
    env = run.get("session", pipe)["environment"]
    answer = (f"**{run['rows']:,} rows × {pipe['features']} features take {wall:,.0f} s ({wall / 3600:.1f} h) "
              f"through the whole local TFX pipeline, with a peak of {peak:.1f} GiB** {key}, on {env['cores']} shared "
              f"cores and {env['memory_gib']} GiB (Beam DirectRunner, `{' '.join(pipe['beam_pipeline_args'])}`).")
    goals = [(f"whole pipeline, {run['rows']:,} rows × {pipe['features']} {key}", f"{wall:,.0f} s, peak {peak:.1f} GiB",
              f"≤ {GOALS['pipeline_s']:,.0f} s, ≤ {GOALS['pipeline_gib']:.0f} GiB",
              (wall <= GOALS["pipeline_s"] and peak <= GOALS["pipeline_gib"]) if run["rows"] == LARGEST_ROWS
              else None)]
    peaks = [c["peak_rss_gib"] for x in runs for c in [component(x, "Transform")] if c]
    fixed = next((c["fixed_seconds"] for c in proj["components"] if c["name"] == "Transform"), None) if proj else None
    if peaks:
        goals.append(("Transform: fixed cost, peak memory at every size",
                      (f"{fixed:,.0f} s, " if fixed is not None else "") + f"{min(peaks):.1f}–{max(peaks):.1f} GiB",
                      f"≤ {GOALS['transform_fixed_s']:.0f} s, ≤ {GOALS['transform_gib']:.0f} GiB",
                      False if max(peaks) > GOALS["transform_gib"]
                      else None if fixed is None else fixed <= GOALS["transform_fixed_s"]))
    goals.append(("pipeline time linear in rows, memory flat", proj["verdict"] if proj else "fewer than two sizes",
                  "linear, flat", proj["linear_and_flat"] if proj else None))
    why = ""
    if proj:
        answer += (f" By the per-row costs fitted over the {len(runs)} sizes, 22M rows × {PAPER_FEATURES} features "
                   f"would take about {proj['local_hours']:,.0f} h on this machine (Dataflow and Vertex AI estimates "
                   "in section 4).")
        goals.append((f"22M rows × {PAPER_FEATURES}, projected", f"≈ {proj['local_hours']:,.0f} h on this machine",
                      "—", None))
        per_row = sum(c["per_row_s"] for c in proj["components"])
        if goals[0][3] is False and per_row * run["rows"] > GOALS["pipeline_s"]:
            why = (f" The per-row costs alone (section 4) add up to {per_row * 1e3:.2f} ms a row, "
                   f"{per_row * run['rows']:,.0f} s at {run['rows']:,} rows: more than the whole-run goal before any "
                   "fixed cost.")
    return answer, goals, why


def _summary(r: Dict, proj: Optional[Dict], cmds: _Commands) -> List[str]:
    """The one-paragraph answer and the goals table: (what, measured, target, met) each."""
    train, inp, srv = r["train"], r["input"], r["serving"]
    if r["pipeline"]:
        answer, goals, why = _pipeline_goals(r["pipeline"], proj, cmds)
    else:
        answer, why = "The pipeline benchmark has not run yet (`python -m benchmarks.perf pipeline`).", ""
        goals = [("whole pipeline, 1,000,000 rows × 720", "not run", "—", None)]
    mean = next((m for m in train["models"] if m["model"] == "mean"), None) if train else None
    key = cmds.cite(train) if train else ""
    if mean:
        share, vs = mean["in_memory"]["roofline_share"], mean["in_memory"].get("vs_dnn_ziln")
        goals.append((f"MEAN's share of its matmul roofline {key}",
                      f"{share:.0%} in-memory, {mean['streamed']['roofline_share']:.0%} streamed",
                      f"≥ {GOALS['roofline']:.0%}", share >= GOALS["roofline"]))
        if vs is not None:
            goals.append((f"MEAN ÷ DNN-ZILN examples/s {key}",
                          f"{vs:.2f}× in-memory, {mean['streamed']['vs_dnn_ziln']:.2f}× streamed",
                          f"≥ {GOALS['vs_ziln']}×", vs >= GOALS["vs_ziln"]))
    else:
        goals.append(("training throughput", "not run", "—", None))
    rate = _rate(train, "mean", "streamed")
    ratio = inp["variants"]["training"]["examples_per_s"] / rate if inp and rate else None
    p50 = srv["batch_sizes"].get("1", {}).get("p50_ms") if srv else None
    memory = _score_memory(r["score"])
    goals += [(f"input pipeline ÷ MEAN training examples/s {cmds.cite(inp) if inp else ''}",
               f"{ratio:.1f}×" if ratio else "not run", f"≥ {GOALS['input']:.0f}×",
               None if ratio is None else ratio >= GOALS["input"]),
              (f"serving p50 at batch 1 {cmds.cite(srv) if srv else ''}",
               f"{p50:.2f} ms" if p50 is not None else "not run", f"≤ {GOALS['serving_ms']:.0f} ms",
               None if p50 is None else p50 <= GOALS["serving_ms"]),
              (f"`mean-tf score` peak memory, largest size ÷ smallest {cmds.cite(r['score']) if memory else ''}",
               memory[1] if memory else "not run", f"≤ {GOALS['score_memory']}×",
               memory[0] <= GOALS["score_memory"] if memory else None),
              ("GPU run of benchmark 1 (mixed precision / XLA)", "not measured: no GPU lent to this task", "—", None)]
    return ([answer, ""] + _table(["goal", "measured", "target", ""], [[g.strip(), m, t, _met(ok)] for g, m, t, ok in goals])
            + ["Keys such as [1] name the command that measured a number (appendix, with the machine and its load)."
               + (" For a goal not met, section 4's profile (*Where the CPU goes*, `python -m benchmarks.perf pipeline --profile`) "
                  "shows where the time goes." + why if any(ok is False for *_, ok in goals) else ""), ""])


def _train_section(train: Optional[Dict], experiments: List[Dict], cmds: _Commands) -> List[str]:
    title = "## 1. Training throughput and the matmul roofline"
    if not train:
        return _not_run(title, "train")
    d, steps = train["data"], train["models"][0]["streamed"]
    out = [title, "", f"Synthetic {d['rows']:,} rows × {d['features']} features ({d['numeric_features']} numeric, "
                      f"{d['categorical_features']} categorical), batch {train['batch_size']}, Adam, {steps['steps']} "
                      f"timed steps after {steps['warmup']} warm-up steps {cmds.cite(train)}. *In-memory* repeats 4 cached "
                      "batches (the model alone); *streamed* reads the gzipped TFRecords while training.", ""]
    out += _table(["model", "params", "train MFLOP/example", "in-memory ex/s", "streamed ex/s",
                   "× DNN-ZILN (in-memory / streamed)", "roofline share (in-memory / streamed)"],
                  [[m["model"], f"{m['parameters']:,}", f"{m['train_flops_per_example'] / 1e6:.2f}",
                    _fmt(m["in_memory"]["examples_per_s"]), _fmt(m["streamed"]["examples_per_s"]),
                    f"{_fmt(m['in_memory'].get('vs_dnn_ziln'), 2)} / {_fmt(m['streamed'].get('vs_dnn_ziln'), 2)}",
                    f"{m['in_memory']['roofline_share']:.0%} / {m['streamed']['roofline_share']:.0%}"]
                   for m in train["models"]])
    by = {m["model"]: m for m in train["models"]}
    if "mean" in by and "dnn_ziln" in by:
        flops = by["mean"]["train_flops_per_example"] / by["dnn_ziln"]["train_flops_per_example"]
        out += [f"A MEAN step needs {flops:.2f}× DNN-ZILN's FLOPs per example (five experts, the attention, one DAM "
                f"tower per horizon), so at equal efficiency it would run at {1 / flops:.2f}× its rate; its matmuls "
                f"alone take {by['mean']['in_memory']['roofline_share']:.0%} of its in-memory step, so the lever left "
                "is fewer FLOPs, not less overhead.", ""]
    out += ["The roofline is the step's matmuls (counted from the traced step, `benchmarks.perf.flops`) each timed alone at "
            "its shape (`benchmarks.perf.roofline`); share = that time / the measured step. Peak dense matmul rate in the "
            f"same run ({train.get('peak_matmul_size', 1024)}³ float32): {_fmt(train['peak_matmul_gflops_per_s'])} "
            "GFLOP/s." + (" A share above 100 % means the ops were timed alone while the shared machine was busier."
                          if any(m["in_memory"]["roofline_share"] > 1.0 for m in train["models"]) else ""), ""]
    return out + _note(train) + (_train_experiments(train, experiments, cmds) if experiments else [])


def _settings(command: str) -> str:
    """The options of a `python -m benchmarks.perf train` command that change what is measured ("" for a baseline)."""
    words = shlex.split(command)
    return " ".join(w if w in ("--jit", "--deterministic") else f"{w} {words[i + 1]}"
                    for i, w in enumerate(words) if w in SETTINGS)


def _started(record: Dict) -> datetime:
    return datetime.strptime(record["environment"]["time"][:19], "%Y-%m-%d %H:%M:%S")  # then the time zone


def _baseline(run: Dict, records: List[Dict]) -> Optional[Dict]:
    """The run without settings nearest in time to `run`, at the same rows and steps: its same-load baseline."""
    def shape(e):
        return e["data"]["rows"], e["models"][0]["streamed"]["steps"]

    candidates = [e for e in records if e is not run and not _settings(e["command"]) and shape(e) == shape(run)]
    return min(candidates, key=lambda e: abs((_started(e) - _started(run)).total_seconds()), default=None)


def _train_experiments(train: Dict, experiments: List[Dict], cmds: _Commands) -> List[str]:
    experiments = sorted(experiments, key=_started)
    rows = []
    for e in experiments:
        mean, streamed, ziln = (_rate(e, "mean", "in_memory"), _rate(e, "mean", "streamed"),
                                _rate(e, "dnn_ziln", "in_memory"))
        setting = _settings(e["command"])
        base = _baseline(e, [train] + experiments) if setting else None
        vs = "baseline" if not setting else "—" if base is None else (
            f"×{mean / _rate(base, 'mean', 'in_memory'):.2f} / ×{streamed / _rate(base, 'mean', 'streamed'):.2f} "
            f"of {base.get('tag', 'train.json')}")
        rows.append([f"{e.get('tag', '?')} {cmds.cite(e)}", f"`{setting}`" if setting else "defaults",
                     _fmt(mean), _fmt(streamed), _fmt(mean / ziln if mean and ziln else None, 2), vs])
    return (["### Training experiments", "",
             "Each tagged run changes one setting; it is compared with the run without one nearest in time at the same "
             "rows and steps (the same machine load), and a change is kept only if faster there.", ""]
            + _table(["run", "setting", "MEAN in-memory ex/s", "MEAN streamed ex/s", "MEAN ÷ DNN-ZILN (in-memory)",
                      "MEAN × its baseline (in-memory / streamed)"], rows))


def _input_section(inp: Optional[Dict], train: Optional[Dict], cmds: _Commands) -> List[str]:
    title = "## 2. Input pipeline"
    if not inp:
        return _not_run(title, "input")
    rate, v = _rate(train, "mean", "streamed"), inp["variants"]["training"]
    rows = [[f"`{name}`", _fmt(x["examples_per_s"]), _fmt(x["examples_per_s"] / rate if rate else None)]
            for name, x in inp["variants"].items()]
    return ([title, "", f"TFRecords → parsed, transformed batches of {inp['batch_size']}, nothing else in the process "
                        f"({v['batches']} batches after {v['warmup']} warm-up) {cmds.cite(inp)}. `training` is "
                        "`mean_tf.training.protocol.make_dataset` as training uses it; `no_shuffle` drops the shuffle buffer "
                        "(evaluation); `parallel_reads` interleaves the files (not deterministic, so not used).", ""]
            + _table(["pipeline", "examples/s", "× MEAN training (streamed)"], rows) + _note(inp))


def _serving_section(srv: Optional[Dict], cmds: _Commands) -> List[str]:
    title = "## 3. Serving latency"
    if not srv:
        return _not_run(title, "serving")
    rows = [[b, x["requests"], f"{x['p50_ms']:.2f}", f"{x['p99_ms']:.2f}", _fmt(x["examples_per_s"])]
            for b, x in sorted(srv["batch_sizes"].items(), key=lambda kv: int(kv[0]))]
    return ([title, "", f"`serving_default` of the exported {srv['export']['model']} model (label "
                        f"{srv['export']['label']}): serialized raw tf.Example ({srv['data']['features']} features) → "
                        "parse → Transform graph → model, one `Session.run` per request as TF Serving does (load took "
                        f"{srv['load_seconds']:.1f} s) {cmds.cite(srv)}.", ""]
            + _table(["batch", "requests", "p50 ms", "p99 ms", "examples/s at p50"], rows) + _note(srv))


def _example_gen(record: Dict) -> str:
    # Records written before the switch existed have no key: they ran TFX's stock ImportExampleGen.
    return "stock (Reshuffle of every split)" if record.get("shuffle_examples", True) else "copies the split files"


def _pipeline_section(pipe: Optional[Dict], proj: Optional[Dict], earlier: List[Dict], cmds: _Commands,
                      changes: Optional[Dict[str, str]] = None) -> List[str]:
    """Benchmark 4; `proj` is `project(pipe, ...)`, None with fewer than two sizes."""
    title = "## 4. Pipeline scaling"
    if not pipe:
        return _not_run(title, "pipeline")
    runs = sorted(pipe["runs"], key=lambda x: x["rows"])
    keys = [cmds.cite(x.get("session", pipe), x.get("load_average_after"), f" at {x['rows']:,} rows") for x in runs]
    names = list(dict.fromkeys(c["name"] for x in runs for c in x["components"]))
    small = [n for n in names if max(c["seconds"] for x in runs for c in [component(x, n)] if c) < MIN_COMPONENT_SECONDS]
    small = small if len(small) > 1 else []  # the bookkeeping components, folded into one row
    fits = {c["name"]: c for c in (proj["components"] if proj else [])}
    rows = [[name + (" (memory **grows**)" if fits.get(name, {}).get("memory_grows") else "")]
            + [_cell(component(x, name)) for x in runs]
            + ([f"{fits[name]['fixed_seconds']:,.0f}", f"{fits[name]['per_row_ms']:.3f}"] if name in fits else ["—", "—"])
            for name in names if name not in small]
    if small:
        rows.append([f"{len(small)} others (each < {MIN_COMPONENT_SECONDS:.0f} s)"]
                    + [f"{sum(c['seconds'] for c in x['components'] if c['name'] in small):,.0f} s" for x in runs]
                    + ["", ""])
    rows.append(["**whole run**"] + [_cell(x, "wall_seconds") for x in runs] + ["", ""])
    out = [title, "", f"The whole local TFX pipeline (`pipeline/local_runner.py`), model `{pipe['model']}` "
                      f"({pipe['epochs']} epochs), synthetic data of {pipe['features']} features, ExampleGen "
                      f"{_example_gen(pipe)}; seconds from ML Metadata, peak memory of the whole process tree, and a "
                      "straight line through the sizes (fixed s + per-row ms × rows).", ""]
    out += _table(["component (s / peak GiB)"] + [f"{x['rows']:,} rows {k}" for x, k in zip(runs, keys)]
                  + ["fixed s", "per-row ms"], rows)
    last = runs[-1]
    if last["components"] and last["wall_seconds"]:
        slowest, biggest = (max(last["components"], key=lambda c: c[k]) for k in ("seconds", "peak_rss_gib"))
        out += [f"At {last['rows']:,} rows {slowest['name']} takes {slowest['seconds'] / last['wall_seconds']:.0%} of "
                f"the time, and the peak ({biggest['peak_rss_gib']:.1f} GiB) is {biggest['name']}'s.", ""]
    if len(set(keys)) > 1:
        out += [f"The sizes ran in {len(set(keys))} sessions ({', '.join(dict.fromkeys(keys))}; `--extend` adds sizes "
                "to a saved record); the machine's speed can differ between them.", ""]
    out += _note(pipe)
    if pipe.get("not_run"):
        out += [f"Not run (the reason given with the command, before it ran): {pipe['not_run']}", ""]
    if pipe.get("pending"):
        out += [f"Not finished: {', '.join(f'{n:,}' for n in pipe['pending'])} rows (the command had not finished "
                "them when this record was written: it was stopped or is still running).", ""]
    if proj:
        out += [" ".join(filter(None, [proj["prediction"], proj["text"]])) + " (Assumptions in the appendix.)", ""]
    return (out + (_earlier_records(earlier, runs, cmds, changes or {}) if earlier else [])
            + _profiles([pipe] + earlier, cmds))


def _profiles(records: List[Dict], cmds: _Commands, top: int = 3) -> List[str]:
    """The py-spy profile of every profiled pipeline run (`python -m benchmarks.perf pipeline --profile`): CPU seconds per
    component and the functions they go to."""
    out = []
    for e in records:
        for x in sorted((x for x in e["runs"] if x.get("profile")), key=lambda x: x["rows"]):
            prof = x["profile"]
            key = cmds.cite(x.get("session", e), x.get("load_average_after"), f" at {x['rows']:,} rows")
            # Most CPU first (the JSON file keeps keys sorted by name); components under a CPU-second left out.
            ranked = sorted(prof["components"].items(), key=lambda kv: -kv[1]["cpu_seconds"])
            rows = [[name, f"{c['cpu_seconds']:,.0f}", f"{c['beam_worker_share']:.0%}", _functions(c["top_own"], top),
                     _functions(c["top_inclusive"], top)] for name, c in ranked if c["cpu_seconds"] >= 1]
            out += [f"### Where the CPU goes: {x['rows']:,} rows profiled {key}", "",
                    f"{prof['tool']} sampled every process of the run {prof['rate']} times a second (not pausing it): "
                    f"{prof['cpu_seconds']:,.0f} CPU-seconds in a {x['wall_seconds']:,.0f} s run. A sample belongs to "
                    "the TFX executor on its stack (the runner process) or to the library of the Beam transform a "
                    "worker runs; *own* is time in the function itself, *with callees* includes what it calls. TFX's "
                    "Transform executor reads and decodes its analysis split twice, once to analyze and once to "
                    "transform it (`tfx/components/transform/executor.py`: reading it again keeps some Beam runners "
                    "from materialising it).", ""]
            out += _table(["component", "CPU s", "in Beam workers", f"top {top} own CPU s", f"top {top} with callees, CPU s"],
                          rows)
            out += _largest_cost(prof) + _start_up(prof) + _note(e)
    return out


# Work a Beam worker does once, whatever the rows: part of a component's fixed cost.
START_UP = {IMPORTING: "importing modules",
            "_make_graph_state (tensorflow_transform/beam/impl.py)": "loading the transform graph"}


def _start_up(prof: Dict) -> List[str]:
    """Transform's start-up work in its Beam workers, as far as its listed functions show it."""
    listed = prof["components"].get("transform", {})
    found = {f["function"]: f["cpu_seconds"] for f in listed.get("top_own", []) + listed.get("top_inclusive", [])}
    parts = [f"{what} {found[name]:,.0f} CPU-s" for name, what in START_UP.items() if name in found]
    return [f"Start-up work in Transform's Beam workers, part of its fixed cost: {'; '.join(parts)}.", ""] if parts else []


def _largest_cost(prof: Dict) -> List[str]:
    """The function with the most own CPU summed over the components, and where it is spent."""
    own, where = collections.Counter(), collections.defaultdict(list)
    for name, c in prof["components"].items():
        for f in c["top_own"]:
            own[f["function"]] += f["cpu_seconds"]
            where[f["function"]].append(f"{name} {f['cpu_seconds']:,.0f}")
    if not own:
        return []
    function, cpu = own.most_common(1)[0]
    return [f"The largest single cost is `{function}`: {cpu:,.0f} CPU-s, {cpu / prof['cpu_seconds']:.0%} of the "
            f"sampled CPU ({'; '.join(where[function])}).", ""]


def _functions(functions: List[Dict], top: int) -> str:
    return "; ".join(f"`{f['function']}` {f['cpu_seconds']:,.0f}" for f in functions[:top])


# The code changes that the other pipeline records straddle, by the commit that made them (in the results folder).
CODE_CHANGES = "code_changes"


def _earlier_records(records: List[Dict], runs: List[Dict], cmds: _Commands, changes: Dict[str, str]) -> List[str]:
    """Other pipeline records (other commits or settings) next to this page's runs at the same size; the Trainer
    (which ExampleGen does not touch) tells the machine's speed on the day from the change's effect."""
    now = {x["rows"]: x for x in runs}
    rows = []
    for e in records:
        for x in sorted(e["runs"], key=lambda x: x["rows"]):
            key = cmds.cite(x.get("session", e), x.get("load_average_after"), f" at {x['rows']:,} rows")
            ref = now.get(x["rows"])
            commit = (x.get("session") or e).get("environment", {}).get("git_commit", "?")
            rows.append([f"{e['_file']} {key}", f"`{commit}`", _example_gen(e), f"{x['rows']:,}",
                         _cell(component(x, "ImportExampleGen")), _cell(component(x, "Transform")),
                         _cell(component(x, "Evaluator")), _cell(x, "wall_seconds"), _ratio(ref and ref["wall_seconds"], x["wall_seconds"]),
                         _ratio(_seconds(ref, "Trainer"), _seconds(x, "Trainer"))])
    return (["### Other pipeline records", "",
             "The same benchmark at other commits or settings (the record's name says which). TFX's stock ImportExampleGen reshuffles every split, a GroupByKey "
             "held in the DirectRunner's memory; the copying one copies the gzipped split files."
             + (" Commits before "
                f"`{changes['one_phase_transform']}` ran the two-phase Transform with one vocabulary analyzer per "
                "categorical feature (72 at 720 features, about 920 Beam stages); later ones the one-phase Transform "
                "with one joint vocabulary analyzer (`mean_tf/transform/vocabulary.py`, 25 stages)."
                if "one_phase_transform" in changes else "")
             + (" Commits before "
                f"`{changes['evaluation_schema']}` ran the Evaluator on all 720 decoded features and the "
                "transform_features preprocessing; later ones decode only the label and slice features."
                if "evaluation_schema" in changes else "")
             + " The × columns are this page's time "
             "over the record's at the same size: the Trainer's, which no change touches, is the machine's speed on "
             "the day.", ""]
            + _table(["record", "commit", "ExampleGen", "rows", "ImportExampleGen s / GiB", "Transform s / GiB",
                      "Evaluator s / GiB", "whole run s / GiB", "whole run ×", "Trainer ×"], rows))


def _seconds(run: Optional[Dict], name: str) -> Optional[float]:
    c = component(run, name) if run else None
    return c["seconds"] if c else None


def _ratio(a: Optional[float], b: Optional[float]) -> str:
    return f"×{a / b:.2f}" if a and b else "—"


def _score_section(score: Dict, cmds: _Commands) -> List[str]:
    rows = [[f"{x['customers']:,}", f"{x['wall_seconds']:.1f}", _fmt(x["customers_per_s"]), f"{x['peak_rss_mib']:,.0f}"]
            for x in score["scoring_runs"]]
    for x in score["scoring_runs"]:
        cmds.cite(score, x["load_average_after"], f" at {x['customers']:,} customers")
    return (["## 5. Batch scoring (`mean-tf score`)", "",
             f"`mean-tf score` with the exported {score['export']['model']} model (label {score['export']['label']}) on "
             f"the train split of synthetic data of {score['data']['features']} features, each size in a fresh process "
             f"{cmds.cite(score)}; peak memory is the process's resident set. Only the predictions stay in memory, to "
             "rank; the Parquet output is written in batches.", ""]
            + _table(["customers", "wall s", "customers/s", "peak MiB"], rows) + _note(score))


def _score_memory(score: Optional[Dict]):
    """(largest run's peak / smallest run's peak, text) or None."""
    runs = sorted(score["scoring_runs"], key=lambda r: r["customers"]) if score else []
    if len(runs) < 2:
        return None
    ratio = runs[-1]["peak_rss_mib"] / runs[0]["peak_rss_mib"]
    return ratio, (f"{ratio:.2f}× ({runs[0]['peak_rss_mib']:,.0f} MiB at {runs[0]['customers']:,} customers, "
                   f"{runs[-1]['peak_rss_mib']:,.0f} MiB at {runs[-1]['customers']:,})")


def _writer_section(writer: Dict, cmds: _Commands) -> List[str]:
    hand, library = (e["rows_per_s"] for e in writer["encoders"].values())  # in the order writer_rates runs them
    rows = [[f"`{name}`", _fmt(e["rows_per_s"]), f"{e['cpu_seconds']:,.0f}", f"{e['megabytes']:,.0f}"]
            for name, e in writer["encoders"].items()]
    return (["## 6. Dataset writer", "",
             f"{writer['rows']:,} synthetic rows × {writer['features']} features encoded as tf.Examples and written by "
             f"the same gzip TFRecord writer (level 1), once per encoder {cmds.cite(writer)}. The library path is "
             f"{hand / library:.2f}× slower than the hand one, which the dataset writer keeps only while that is above "
             f"2× ({'it is' if hand / library > 2 else '**it is not**'}). Both files parse to "
             f"{'the same' if writer['same_values'] else '**different**'} values (first 1,000 rows).", ""]
            + _table(["encoder", "rows/s", "CPU s", "file MB"], rows) + _note(writer))


def _appendix(records: List[Dict], cmds: _Commands, flags: str) -> List[str]:
    env = next((r["environment"] for r in records if r and "environment" in r), None)
    out = ["## Appendix", "", "### Commands", "",
           f"Every command once, as it ran (`python -m benchmarks.perf all{flags}` runs the defaults; the report is "
           f"`python -m benchmarks.perf report{flags}`). Load is the 1/5/15-minute load average before → after; above the number "
           "of cores the benchmark shared the CPU with other work, and its rates are lower bounds.", ""]
    out += cmds.listing()
    if env:
        out += ["### Machine", ""] + _table(["", ""], [
            ["CPU", f"{env['cpu']} ({env['cores']} cores visible; {', '.join(env['cpu_flags']) or 'no AVX'})"],
            ["memory", f"{env['memory_gib']} GiB"], ["platform", env["platform"]],
            ["accelerator", "none (the device tool lent no GPU to this task)"],
            ["versions", ", ".join(f"{k} {v}" for k, v in env["versions"].items())],
            ["TensorFlow threads", f"intra-op {env['tf_threads'].get('intra_op', 0)}, inter-op "
                                   f"{env['tf_threads'].get('inter_op', 0)} (0 = one per core)"]])
    return out + ["### Projection assumptions", "", PROJECTION_ASSUMPTIONS[0].upper() + PROJECTION_ASSUMPTIONS[1:], "",
                  "Running elsewhere (Vertex AI Pipelines and Training, Dataflow, Flink, Spark, several workers): "
                  "README, section Deploy. A GPU run: `python -m benchmarks.perf train --tag gpu` (and `--jit --tag gpu-xla`).", ""]


def render(results_dir: str, flags: str = "") -> str:
    """The report's Markdown; `flags` (e.g. " --write-docs") completes the commands its header names."""
    r = {part: res.read_result(results_dir, part) for part in res.PARTS + ("score", "writer")}
    cmds = _Commands()
    proj = project(r["pipeline"], _rate(r["train"], "mean", "streamed")) if r["pipeline"] else None
    lines = ["# mean-tf performance", "",
             f"<!-- Generated by `python -m benchmarks.perf report{flags}` from the JSON files in `{results_dir}`; do not edit by "
             f"hand: rerun the benchmarks (`python -m benchmarks.perf all{flags}`) and the report instead. -->", ""]
    lines += _summary(r, proj, cmds)
    lines += _train_section(r["train"], res.read_experiments(results_dir, "train"), cmds)
    lines += _input_section(r["input"], r["train"], cmds)
    lines += _serving_section(r["serving"], cmds)
    lines += _pipeline_section(r["pipeline"], proj, res.read_experiments(results_dir, "pipeline"), cmds,
                               res.read_result(results_dir, CODE_CHANGES))
    lines += _score_section(r["score"], cmds) if r["score"] else []
    lines += _writer_section(r["writer"], cmds) if r["writer"] else []
    lines += _appendix(list(r.values()), cmds, flags)
    return "\n".join(lines)


def write_report(results_dir: str, out_path: str, flags: str = "") -> str:
    write_text(out_path, render(results_dir, flags))
    return out_path
