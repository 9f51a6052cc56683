"""Resumability: a training process killed with SIGKILL and started again with the same arguments resumes
from its last BackupAndRestore checkpoint and ends where an uninterrupted run ends (same epochs, same
model-selection decision, same best weights, same test metrics).

The killed run is this file run as a script (`python test_reliability_resume.py ...`): it calls
`mean_tf.training.fit_predict.run(..., backup_dir=...)`, and with `--pause-after-epoch E` it sleeps after the
backup of epoch E, so that the kill lands at a known point.
"""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

CONFIG = dict(shared_units=(16, 8), expert_units=8, attention_units=8, dam_shared_units=8, dam_units=(8,),
              embedding_dim=2, batch_size=32, epochs=6, patience=2, learning_rate=0.03, deterministic=True,
              label_scaling="log1p")
KILL_AFTER_EPOCH = 1  # 0-based: two epochs are done (and backed up) when the process is killed
TIMEOUT = 300


def shared_workspace(tmp_path_factory):
    """The tiny dataset and a work folder shared by the reliability tests (Transform runs once per session)."""
    from mean_tf.data import read_manifest
    from tiny_dataset import write_tiny_dataset

    root = tmp_path_factory.getbasetemp() / "reliability"
    if not (root / "data" / "manifest.json").exists():
        write_tiny_dataset(root / "data")
    return read_manifest(root / "data"), str(root / "work")


def train_and_record(manifest_path: str, work: str, out: str, backup: str = None, pause_after_epoch: int = None):
    """fit_predict.run on the config above; writes `<out>.json` (history, best epoch, metrics) and `<out>.npz`."""
    import tensorflow as tf

    from mean_tf.training import fit_predict
    from mean_tf.config import MEANConfig
    from mean_tf.data import read_manifest

    if pause_after_epoch is not None:
        backup_epoch_end = tf.keras.callbacks.BackupAndRestore.on_epoch_end

        def pause(self, epoch, logs=None):
            backup_epoch_end(self, epoch, logs)
            if epoch == pause_after_epoch:
                time.sleep(TIMEOUT)

        tf.keras.callbacks.BackupAndRestore.on_epoch_end = pause
    outcome = fit_predict.run("mean", MEANConfig(**CONFIG), read_manifest(manifest_path), work, backup_dir=backup)
    np.savez(out + ".npz", *outcome.model.get_weights())
    with open(out + ".json", "w", encoding="utf-8") as f:
        json.dump({"history": outcome.fit.history, "best_epoch": outcome.fit.best_epoch,
                   "metrics": outcome.evaluate()}, f)


def _worker(manifest, work, out, backup, pause=None):
    """The script in a new process; its output goes to `<out>.log` (read by `_log` when it fails)."""
    argv = [sys.executable, __file__, str(manifest), work, str(out), str(backup)]
    argv += [str(pause)] if pause is not None else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")])}
    with open(f"{out}.log", "wb") as log:
        return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)


def _log(out) -> str:
    with open(f"{out}.log", encoding="utf-8", errors="replace") as f:
        return f.read()[-3000:]


def test_killed_training_resumes_and_ends_where_an_uninterrupted_run_ends(tmp_path_factory, tmp_path):
    from mean_tf.training import fit_predict, protocol
    from mean_tf.config import MEANConfig

    manifest, work = shared_workspace(tmp_path_factory)
    fit_predict.materialize_cached(manifest, MEANConfig(**CONFIG), work)  # Transform here, once, not in the workers
    manifest_path = os.path.join(manifest.root, "manifest.json")
    backup = tmp_path / "backup"

    killed = _worker(manifest_path, work, tmp_path / "killed", backup, pause=KILL_AFTER_EPOCH)
    state = backup / protocol.SELECTION_STATE / f"state-{KILL_AFTER_EPOCH}.json"
    deadline = time.time() + TIMEOUT
    while protocol.completed_epochs(str(backup)) <= KILL_AFTER_EPOCH:
        assert killed.poll() is None, _log(tmp_path / "killed")
        assert time.time() < deadline, "no backup of the epoch to kill after"
        time.sleep(0.2)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL and state.exists()
    assert protocol.completed_epochs(str(backup)) == KILL_AFTER_EPOCH + 1
    assert not (tmp_path / "killed.json").exists()

    resumed = _worker(manifest_path, work, tmp_path / "resumed", backup)
    assert resumed.wait(TIMEOUT) == 0, _log(tmp_path / "resumed")
    train_and_record(manifest_path, work, str(tmp_path / "uninterrupted"))  # in this process, no backup

    with open(tmp_path / "resumed.json") as f:
        got = json.load(f)
    with open(tmp_path / "uninterrupted.json") as f:
        want = json.load(f)
    done = KILL_AFTER_EPOCH + 1
    assert len(want["history"]["val_loss"]) > done + 1  # the resumed run trained more than one epoch
    assert got["best_epoch"] == want["best_epoch"]
    for key, values in want["history"].items():  # the resumed run logs the epochs after the kill
        np.testing.assert_allclose(got["history"][key], values[done:], rtol=1e-6, err_msg=key)
    for name, values in want["metrics"]["cltv_365"].items():
        assert got["metrics"]["cltv_365"][name] == pytest.approx(values, rel=1e-6, abs=1e-6, nan_ok=True), name
    with np.load(tmp_path / "resumed.npz") as a, np.load(tmp_path / "uninterrupted.npz") as b:
        assert len(a.files) == len(b.files)
        for key in b.files:
            np.testing.assert_allclose(a[key], b[key], rtol=1e-6, atol=1e-7, err_msg=key)
    assert not os.listdir(backup)  # a finished run leaves no backup behind


if __name__ == "__main__":
    train_and_record(*sys.argv[1:4], backup=sys.argv[4],
                     pause_after_epoch=int(sys.argv[5]) if len(sys.argv) > 5 else None)
