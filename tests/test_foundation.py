"""The package's ground rules: Keras 2 mode, the CLI, the bundled data."""
import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(code, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


def test_import_pins_tf_keras_to_keras2():
    out = _run("import mean_tf, tensorflow as tf; print(tf.keras.__name__)")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith("tf_keras"), out.stdout


def test_import_after_tensorflow_still_gets_keras2():
    out = _run("import tensorflow as tf; import mean_tf; print(tf.keras.__name__)")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith("tf_keras"), out.stdout


def test_subpackages_load_on_first_use_and_the_serving_client_names_the_readme_model():
    out = _run("import mean_tf, sys; print('mean_tf.data' in sys.modules, 'tensorflow' in sys.modules); "
               "f = mean_tf.data.write_dataset; print('mean_tf.data' in sys.modules, mean_tf.models.build.__name__)")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False", "True", "build"]  # importing mean_tf stays cheap
    from mean_tf.serving import client

    readme = (ROOT / "README.md").read_text()
    assert f"--model_name={client.MODEL_NAME}" in readme
    assert client.grpc_predict_request([]).model_spec.name == client.MODEL_NAME


def test_import_refuses_when_keras3_is_already_active():
    out = _run("import tensorflow as tf; tf.keras.layers; import mean_tf", {"TF_USE_LEGACY_KERAS": "0"})
    assert out.returncode != 0
    assert "TF_USE_LEGACY_KERAS=1" in out.stderr


def test_cli_help_for_every_subcommand():
    from mean_tf.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    assert subparsers.choices, "no subcommands registered"
    for name in subparsers.choices:
        out = subprocess.run([sys.executable, "-m", "mean_tf.cli", name, "--help"], capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 0, (name, out.stderr)
        assert "usage: mean-tf" in out.stdout


def test_bundled_data_is_the_documented_file():
    data = ROOT / "data" / "online_retail_ii_lines.parquet"
    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    assert digest == "f9f4a0266c0211f37120762ad31918dc2ef97d20f148640022390bad762622ed"
    assert "CC BY 4.0" in (ROOT / "data" / "ONLINE_RETAIL_II.md").read_text()
