"""Every path that can be a dataset, schema, model or output may be a URI (gs://... on Vertex AI), so the package
(mean_tf/, pipeline/) reaches files through `tf.io.gfile` (or `mean_tf.runtime.files`, which sends a URI there), never
through Python's local-only file API, except in the local-only places listed in `LOCAL_ONLY`, each with its
reason. The check reads the code (ast): a call or an import of a name in `LOCAL_FILE_API`, or of anything in
`shutil`, outside those places fails it; so does an entry of `LOCAL_ONLY` that matches nothing any more.
"""
import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("mean_tf", "pipeline")
LOCAL_FILE_API = {"open", "io.open", "gzip.open", "os.path.exists", "os.path.isfile", "os.path.isdir", "os.listdir",
                  "os.scandir", "os.walk", "os.makedirs", "os.mkdir", "os.remove", "os.unlink", "os.rename",
                  "os.replace", "glob.glob"}
ANY = "*"  # the whole module
LOCAL_ONLY = {
    ("mean_tf/runtime/files.py", "open_file"): "the local branch; a URI opens with tf.io.gfile.GFile",
    ("mean_tf/runtime/files.py", "exists"): "the local branch; a URI goes to tf.io.gfile",
    ("mean_tf/runtime/files.py", "isdir"): "the local branch; a URI goes to tf.io.gfile",
    ("mean_tf/runtime/files.py", "atomic_file"): "its temporary file is always local; a URI gets it by one upload",
    ("mean_tf/runtime/files.py", "scratch_dir"): "a local scratch folder by definition",
    ("mean_tf/runtime/files.py", "write_json"): "writes atomic_file's local temporary file",
    ("mean_tf/runtime/files.py", "write_text"): "writes atomic_file's local temporary file",
    ("mean_tf/data/streaming.py", ANY): "the public benchmarks' raw downloads (`--input`) are read as local files",
    ("mean_tf/runtime/files.py", "upload_dir"): "walks the local folder it uploads",
    ("mean_tf/data/manifest.py", "atomic_output_dir"): "the local branch (a folder rename); a URI goes to "
                                                       "files.upload_dir",
    ("mean_tf/transform/preprocessing.py", "code_fingerprint"): "hashes this package's own source files",
    ("mean_tf/config.py", "MEANConfig.from_file"): "--config is a local file read when a command starts; the "
                                                   "pipeline carries the config in its components' settings",
    ("pipeline/schema.py", "bundled_schema_file"): "a schema file shipped inside the installed package",
    ("pipeline/local_runner.py", "build"): "ML Metadata is a local SQLite file, also for a gs:// output folder",
    ("pipeline/kubeflow_v2_runner.py", "compile_pipeline"): "the compiled pipeline JSON is a local file handed "
                                                            "to the Kubeflow / Vertex AI client",
    ("mean_tf/commands/benchmark.py", ANY): "benchmark results and reports: local files (docs/, out/)",
    ("mean_tf/benchmark/report.py", ANY): "benchmark results and reports: local files (docs/, out/)",
    ("mean_tf/benchmark/run.py", ANY): "benchmark results and reports: local files (docs/, out/)",
}


def _dotted(node) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return ".".join([node.id, *reversed(parts)]) if isinstance(node, ast.Name) else ""


def _is_local_file_api(name: str) -> bool:
    return name in LOCAL_FILE_API or name == "shutil" or name.startswith("shutil.")


def local_file_api_uses(source: str) -> list:
    """(line, enclosing function or class.method, name) of every local file API call or import in `source`."""
    uses = []

    def visit(node, scope: str):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            scope = f"{scope}.{node.name}" if scope else node.name
        names = []
        if isinstance(node, ast.Call):
            names = [_dotted(node.func)]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        uses.extend((node.lineno, scope, name) for name in names if _is_local_file_api(name))
        for child in ast.iter_child_nodes(node):
            visit(child, scope)

    visit(ast.parse(source), "")
    return uses


def package_uses() -> dict:
    """{(module path, scope): [(line, name), ...]} over the package."""
    found = {}
    for package in PACKAGES:
        for folder, _, names in os.walk(os.path.join(ROOT, package)):
            for name in sorted(names):
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    with open(path, encoding="utf-8") as f:
                        for line, scope, api in local_file_api_uses(f.read()):
                            found.setdefault((os.path.relpath(path, ROOT), scope), []).append((line, api))
    return found


def test_the_package_reaches_files_through_gfile_outside_the_local_only_places():
    outside = [f"{module}:{line} {api} in {scope or 'module level'}"
               for (module, scope), uses in sorted(package_uses().items())
               if (module, scope) not in LOCAL_ONLY and (module, ANY) not in LOCAL_ONLY for line, api in uses]
    assert not outside, ("local-only file API where a path may be a URI (gs://): use tf.io.gfile or mean_tf.runtime.files, "
                         "or add the place to LOCAL_ONLY with its reason:\n" + "\n".join(outside))


def test_every_local_only_place_is_still_used():
    found = package_uses()
    modules = {module for module, _ in found}
    stale = [key for key in LOCAL_ONLY if (key not in found if key[1] != ANY else key[0] not in modules)]
    assert not stale, f"LOCAL_ONLY entries that match nothing: {stale}"


def test_the_check_finds_calls_imports_and_their_scope():
    source = ("import os, shutil\nfrom shutil import rmtree\n"
              "def f(p):\n    return open(p)\n"
              "class C:\n    def g(self, p):\n        os.makedirs(p); shutil.copy(p, p); os.path.join(p, 'x')\n"
              "def h(p):\n    import tensorflow as tf\n    return tf.io.gfile.exists(p)\n")
    assert [(scope, name) for _, scope, name in local_file_api_uses(source)] == [
        ("", "shutil.rmtree"), ("f", "open"), ("C.g", "os.makedirs"), ("C.g", "shutil.copy")]
