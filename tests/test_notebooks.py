"""The notebooks run top to bottom on small data, so they cannot rot.

Each notebook is copied to a temporary folder and executed there by nbclient (the committed copies keep their
full-run outputs) with MEAN_TF_NOTEBOOK_SMALL=1, which their first cell reads: small datasets, two epochs, small
layers. 01-03 share one work folder (datasets and Transform outputs), as they do in a full run; 03 reads a results
file that this test writes through the benchmark's own Runner; 04 (the TFX pipeline) runs beside them.
"""
import concurrent.futures
import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CELL_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """{notebook name: executed notebook, or the exception it raised}.

    01 -> 02 -> 03 run in order (02 reuses 01's Transform output, 03 reads results written by the benchmark's
    Runner on 01's dataset); 04 (the TFX pipeline, its own slice and output folder) runs beside them in a thread:
    each chain keeps about one core busy, so the two together take about as long as the slower one.
    """
    root = tmp_path_factory.mktemp("notebooks")
    env = dict(os.environ, MEAN_TF_NOTEBOOK_SMALL="1", MEAN_TF_NOTEBOOK_WORK=str(root / "work"),
               MEAN_TF_RESULTS=str(root / "results.jsonl"), TF_USE_LEGACY_KERAS="1")
    results = {}

    def attempt(name, before=None):
        try:
            if before:
                before(env)
            results[name] = execute(name, root, env)
        except Exception as e:  # reported by the notebook's own test
            results[name] = e

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pipeline = pool.submit(attempt, "04_pipeline.ipynb")
        attempt("01_data.ipynb")
        attempt("02_train_mean.ipynb")
        attempt("03_compare.ipynb", before=write_benchmark_results)
        pipeline.result()
    return results


def write_benchmark_results(env) -> None:
    """A small results file for 03, written by the benchmark's Runner (classical models: seconds, no Transform)."""
    from mean_tf.benchmark import plan, run

    cells = plan.narrow(plan.cells(plan.Plan(datasets=("online_retail_ii",), seeds=(0,), labels=("cltv_365",),
                                             studies=("table1",))),
                        models=("last_period", "two_stage_gbdt"))
    rows = run.Runner(env["MEAN_TF_NOTEBOOK_WORK"], env["MEAN_TF_RESULTS"], smoke=True, verbose=False).run(cells)
    assert [r["status"] for r in rows] == ["ok", "ok"], rows


def execute(name: str, root: Path, env: dict) -> nbformat.NotebookNode:
    """Run a copy of notebooks/<name> in `root`; nbclient raises CellExecutionError on the first failing cell."""
    copy = root / name
    shutil.copy(NOTEBOOKS / name, copy)
    notebook = nbformat.read(copy, as_version=4)
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(root)}})
    try:
        client.execute(env=env)
    finally:
        nbformat.write(notebook, copy)  # the executed copy stays in the temp folder for inspection
    return notebook


def result(executed, name: str) -> nbformat.NotebookNode:
    outcome = executed[name]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def figures(notebook) -> int:
    return sum("image/png" in out.get("data", {}) for cell in notebook.cells if cell.cell_type == "code"
               for out in cell.outputs)


def text(notebook) -> str:
    """Every text output: streams, plain text and Markdown."""
    parts = []
    for cell in notebook.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            data = out.get("data", {})
            parts += [data.get("text/plain", ""), data.get("text/markdown", ""), data.get("text/html", "")]
    return "\n".join(parts)


def test_small_mode_is_read_in_the_first_cell():
    for path in sorted(NOTEBOOKS.glob("0*.ipynb")):
        first = next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        assert "MEAN_TF_NOTEBOOK_SMALL" in first.source, path.name


def test_committed_notebooks_carry_outputs():
    for path in sorted(NOTEBOOKS.glob("0*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        code = [c for c in notebook.cells if c.cell_type == "code"]
        assert all(c.execution_count for c in code), f"{path.name}: not executed top to bottom"
        assert not any(o.output_type == "error" for c in code for o in c.outputs), f"{path.name}: has an error output"
        assert "small=False" in text(notebook), f"{path.name}: outputs are not from a full run"


# An absolute path of the machine that ran the notebook: /home/me/..., /work/..., /usr/lib/..., C:\Users\...
MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:home|Users|root|work|tmp|mnt|opt|srv|usr|var|private|data)/|\b[A-Z]:\\")


def test_stored_outputs_hold_no_machine_path():
    """A committed notebook's outputs print paths relative to the repository (or its work folder)."""
    for path in sorted(NOTEBOOKS.glob("0*.ipynb")):
        for line in text(nbformat.read(path, as_version=4)).splitlines():
            assert not MACHINE_PATH.search(line), f"{path.name}: {line[:200]}"


def test_01_data(executed):
    notebook = result(executed, "01_data.ipynb")
    assert figures(notebook) >= 6  # zero shares, histograms, concentration, buckets, Spearman, joint density
    out = text(notebook)
    for expected in ("small=True", "boundaries (money)", "bucket 4", "P(buys in days 31-365 | bought in days 0-30)"):
        assert expected in out


def test_02_train_mean(executed):
    notebook = result(executed, "02_train_mean.ipynb")
    assert figures(notebook) >= 6  # losses, deciles, gain, ϑ̂/b̂ per bucket, A per bucket, confusion
    out = text(notebook)
    assert "best epoch" in out and "KL(" in out and "on the test split" in out


def test_03_compare(executed):
    notebook = result(executed, "03_compare.ipynb")
    out = text(notebook)
    assert "| Period | Method |" in out and "two_stage_gbdt" in out and "last_period" in out
    assert figures(notebook) >= 2  # Table 1 heat maps, gain curves


def test_04_pipeline(executed):
    notebook = result(executed, "04_pipeline.ipynb")
    out = text(notebook)
    assert "Pusher" in out and "blessed: True" in out
    difference = re.search(r"largest relative difference between the two loaders: (\S+)", out)
    assert difference and float(difference.group(1)) < 1e-4
    assert figures(notebook) >= 3  # label statistics per split, TFMA slices, deciles before/after calibration
    assert re.search(r"scored [\d,]+ customers \(score split\)", out) and "mean actual" in out


def test_explain_helpers_average_per_true_bucket():
    import numpy as np

    from mean_tf.evaluation import explain

    buckets = np.array([0, 2, 2, 0])
    values = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.0, 1.0]])
    per_bucket = explain.mean_per_bucket(values, buckets, 3)
    np.testing.assert_allclose(per_bucket[[0, 2]], [[0.5, 0.5], [0.25, 0.75]])
    assert np.isnan(per_bucket[1]).all()  # no example in bucket 1
    confusion = explain.confusion_matrix(buckets, np.array([0, 2, 1, 1]), 3)
    np.testing.assert_allclose(confusion[[0, 2]], [[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]])
    assert np.isnan(confusion[1]).all()
    assert explain.confusion_matrix(buckets, buckets, 3, normalize=False).sum() == 4
