"""The notebooks run top to bottom on small data, so they cannot rot.

Each notebook is copied to a temporary folder and executed there by nbclient (the committed copies keep their
full-run outputs) with MEAN_TF_NOTEBOOK_SMALL=1, which their first cell reads: small datasets, two epochs, small
layers. The notebooks share one work folder (datasets and Transform outputs), as they do in a full run. Notebook
03 reads a results file that this test writes through the benchmark's own Runner.
"""
import os
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CELL_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """(folder the notebooks run in, kernel environment)."""
    root = tmp_path_factory.mktemp("notebooks")
    env = dict(os.environ, MEAN_TF_NOTEBOOK_SMALL="1", MEAN_TF_NOTEBOOK_WORK=str(root / "work"),
               MEAN_TF_RESULTS=str(root / "results.jsonl"), TF_USE_LEGACY_KERAS="1")
    return root, env


def execute(name: str, workspace) -> nbformat.NotebookNode:
    """Run a copy of notebooks/<name> in the workspace; nbclient raises CellExecutionError on the first failing cell."""
    root, env = workspace
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


def test_01_data(workspace):
    notebook = execute("01_data.ipynb", workspace)
    assert figures(notebook) >= 6  # zero shares, histograms, concentration, buckets, Spearman, joint density
    out = text(notebook)
    for expected in ("small=True", "boundaries (money)", "bucket 4", "P(365 > 0 | 30 > 0)"):
        assert expected in out


def test_02_train_mean(workspace):
    notebook = execute("02_train_mean.ipynb", workspace)
    assert figures(notebook) >= 6  # losses, deciles, gain, ϑ̂/b̂ per bucket, A per bucket, confusion
    out = text(notebook)
    assert "best epoch" in out and "accuracy" in out and "on the test split" in out


def test_03_compare(workspace):
    from mean_tf.benchmark import plan, run

    root, env = workspace
    cells = plan.narrow(plan.cells(plan.Plan(datasets=("online_retail_ii",), seeds=(0,), labels=("cltv_365",),
                                             studies=("table1",))),
                        models=("last_period", "two_stage_gbdt"))
    rows = run.Runner(env["MEAN_TF_NOTEBOOK_WORK"], env["MEAN_TF_RESULTS"], smoke=True, verbose=False).run(cells)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    notebook = execute("03_compare.ipynb", workspace)
    out = text(notebook)
    assert "| Period | Method |" in out and "two_stage_gbdt" in out and "last_period" in out
    assert figures(notebook) >= 2  # Table 1 bars, gain curves
