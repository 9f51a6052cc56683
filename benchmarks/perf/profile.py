"""Where a pipeline run spends its CPU: py-spy samples of the runner and its Beam workers, by component and function."""
from __future__ import annotations

import collections
import re
from typing import Dict, Iterator, List, Tuple

PYSPY_RATE = 20  # samples per second and process
_EXECUTOR = re.compile(r"^Do \((?:tfx/components/(\w+)/|(?:.*/)?(\w+)\.py)")  # a component executor's entry
# Python frames that block in C (RPC polling, child waits, locks: py-spy cannot tell that they idle), and a
# thread whose target is native code (Beam's gRPC streams: no Python frame to tell busy from idle, nor a cost).
WAITS = frozenset({"_serve (grpc/_server.py)", "channel_spin (grpc/_channel.py)", "_blocking (grpc/_channel.py)",
                   "_poll_connectivity (grpc/_channel.py)", "_next (grpc/_channel.py)", "_try_wait (subprocess.py)",
                   "_wait_for_tstate_lock (threading.py)", "wait (threading.py)", "select (selectors.py)",
                   "poll (selectors.py)", "run (threading.py)"})
_WORKER_PACKAGES = (("tensorflow_model_analysis/", "evaluator"), ("tensorflow_transform/", "transform"),
                    ("tensorflow_data_validation/", "statistics_gen"), ("pipeline/example_gen", "example_gen"))
_PROCESS = re.compile(r'^(process|thread) (0x)?[0-9a-fA-F]+( |:|\()')  # py-spy's process and thread frames
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^:()]+)(?::\d+)?\)$")


def pyspy_command(raw_path: str, cmd: List[str]) -> List[str]:
    """`cmd` under `py-spy record` (its child processes too, not paused while sampled), raw stacks to `raw_path`."""
    import shutil

    from mean_tf.errors import MeanTFError

    pyspy = shutil.which("py-spy")
    if pyspy is None:
        raise MeanTFError("--profile needs py-spy on PATH (pip install py-spy); it is not in requirements.lock")
    return [pyspy, "record", "--subprocesses", "--nonblocking", "--format", "raw", "--rate", str(PYSPY_RATE),
            "-o", raw_path, "--"] + list(cmd)


def _component(frames: List[str]) -> str:
    """The pipeline component a stack belongs to: the TFX executor on it (the runner process), else the
    library of the Beam transform a worker runs."""
    for frame in frames:
        match = _EXECUTOR.match(frame)
        if match:
            return match.group(1) or match.group(2)
    for frame in frames:
        for package, component in _WORKER_PACKAGES:
            if package in frame:
                return component
    return "other"


def _site(frame: str) -> str:
    """`function (file)` of a py-spy frame, without the line number."""
    match = _FRAME.match(frame)
    return f"{match.group('func')} ({match.group('file')})" if match else frame


def _stacks(raw_path: str) -> Iterator[Tuple[List[str], int]]:
    """(stack frames, samples) of py-spy's raw output; a process frame may span lines (a command line with
    newlines), so a line without a trailing count continues on the next."""
    pending = ""
    with open(raw_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            stack, _, count = (pending + line.rstrip("\n")).rpartition(" ")
            if not count.isdigit():
                pending += line
                continue
            pending = ""
            yield stack.split(";"), int(count)


IMPORTING = "(importing Python modules)"
# Frames of the runner, Beam's worker loop, unpickling and imports: on every stack, so no lead to a cost.
_PLUMBING = ("apache_beam/runners/", "apache_beam/utils/", "apache_beam/internal/", "dill/", "threading.py",
             "concurrent/", "<frozen importlib", "runpy.py", "tfx/orchestration/", "local/", "portable/", "tfx/dsl/",
             "<string>", "pipeline/local_runner.py", "<module> (")


def pyspy_summary(raw_path: str, rate: int = PYSPY_RATE, top: int = 8) -> Dict:
    """CPU seconds per component (samples / rate, over every process), each with its `top` functions by own
    time and by time including callees (runner and Beam plumbing left out).

    A stack whose innermost frame is one of `WAITS` counts as waiting, not CPU. A Beam worker serves one
    component, so the stacks of a worker with no component on them (starting up, importing) count for the
    component its other stacks name. Own time under an import is summed as `IMPORTING`."""
    stacks = collections.defaultdict(list)  # innermost process -> [(frames, samples, component)]
    waiting = 0
    for parts, n in _stacks(raw_path):
        frames = [p for p in parts if not _PROCESS.match(p)]
        if frames and _site(frames[-1]) in WAITS:
            waiting += n
            continue
        process = next((p for p in reversed(parts) if _PROCESS.match(p)), "")  # a worker's frame follows its parent's
        stacks[process].append((frames, n, _component(frames)))
    samples, workers = collections.Counter(), collections.Counter()
    own, inclusive = collections.defaultdict(collections.Counter), collections.defaultdict(collections.Counter)
    for process, entries in stacks.items():
        named = collections.Counter()
        for _, n, component in entries:
            named[component] += n
        named.pop("other", None)
        in_worker = "sdk_worker" in process
        owner = named.most_common(1)[0][0] if in_worker and named else "other"
        for frames, n, component in entries:
            component = owner if component == "other" else component
            samples[component] += n
            workers[component] += n if in_worker else 0
            if frames:
                importing = any(fr.startswith("_find_and_load (") for fr in frames)
                own[component][IMPORTING if importing else _site(frames[-1])] += n
            for site in {_site(fr) for fr in frames if not any(k in fr for k in _PLUMBING)}:
                inclusive[component][site] += n
    out = {}
    for component, n in sorted(samples.items(), key=lambda kv: -kv[1]):
        out[component] = {
            "cpu_seconds": n / rate, "beam_worker_share": workers[component] / n,
            "top_own": [{"function": s, "cpu_seconds": c / rate} for s, c in own[component].most_common(top)],
            "top_inclusive": [{"function": s, "cpu_seconds": c / rate}
                              for s, c in inclusive[component].most_common(top)]}
    return {"tool": "py-spy", "rate": rate, "cpu_seconds": sum(samples.values()) / rate,
            "waiting_seconds": waiting / rate, "components": out}
