"""The package's shape: imports run one way (each subpackage imports only what its docstring's "May import" line
names; no cycles; `pipeline` above `mean_tf`, `benchmarks` above both), docs/design.md lists every subpackage,
the contract's names are defined once, the wheel ships no performance suite, and the README's pipeline flags
are `PipelineSettings`'. Reads files only (the wheel test builds one: a few seconds)."""
import ast
import re
import subprocess
import sys
import zipfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mean_tf", "pipeline", "benchmarks")


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield _module(path), path


def _imports(path: Path):
    """Every project module a file imports, at any depth (function-level imports count too)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # `from mean_tf import contract` imports the module mean_tf.contract
                name = f"{node.module}.{alias.name}"
                yield name if _is_module(name) else node.module


def _is_module(dotted: str) -> bool:
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _unit(module: str) -> str:
    """The unit the import rules speak of: a subpackage or top-level module of mean_tf, or a whole package."""
    parts = module.split(".")
    if parts[0] != "mean_tf":
        return parts[0]
    return parts[1] if len(parts) > 1 else "mean_tf"


def _may_import(unit: str):
    """The units a mean_tf unit's docstring allows ("May import: a, b." or "nothing.")."""
    path = ROOT / "mean_tf" / unit
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    found = re.search(r"^May import: (.+?)\.\s*$", doc, re.M)
    assert found, f"{path.relative_to(ROOT)}: its docstring has no 'May import: ...' line"
    return set() if found.group(1) == "nothing" else {u.strip() for u in found.group(1).split(",")}


def _graphs():
    modules, units = defaultdict(set), defaultdict(set)
    for module, path in _sources():
        for imported in _imports(path):
            if imported.split(".")[0] not in PACKAGES:
                continue
            modules[module].add(imported)
            if _unit(module) != _unit(imported) and _unit(imported) != "mean_tf":
                units[_unit(module)].add(_unit(imported))
    return modules, units


def _cycle(graph):
    """One cycle of a directed graph as a list of nodes, or None."""
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt]
            if nxt not in state:
                found = visit(nxt, stack + [nxt])
                if found:
                    return found
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [node])
            if found:
                return found
    return None


def test_each_mean_tf_unit_imports_only_what_its_docstring_allows():
    _, units = _graphs()
    declared = sorted(p.stem if p.is_file() else p.name for p in (ROOT / "mean_tf").iterdir()
                      if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file())
    for unit in declared:
        extra = units.get(unit, set()) - _may_import(unit)
        assert not extra, f"mean_tf.{unit} imports {sorted(extra)}, which its docstring does not allow"


def test_imports_have_no_cycles_and_run_from_benchmarks_down_to_mean_tf():
    modules, units = _graphs()
    inside = {u: v for u, v in units.items() if u not in ("pipeline", "benchmarks")}
    assert _cycle(inside) is None, f"import cycle between subpackages: {' -> '.join(_cycle(inside))}"
    assert _cycle(modules) is None, f"import cycle: {' -> '.join(_cycle(modules))}"
    upward = {u: sorted(v & {"pipeline", "benchmarks"}) for u, v in inside.items() if v & {"pipeline", "benchmarks"}}
    assert not upward, f"mean_tf imports the packages above it: {upward}"
    assert "benchmarks" not in units["pipeline"] and "pipeline" in units["benchmarks"]


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) is not None
    assert _cycle({"a": {"b"}, "b": {"c"}}) is None


def test_design_doc_opens_with_every_subpackage():
    text = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    layout = text[text.index("## Layout"):text.index("\n## ", text.index("## Layout") + 1)]
    assert text.index("\n## ") + 1 == text.index("## Layout"), "Layout is the first section"
    listed = set(re.findall(r"^\| `([\w/]+(?:\.py)?)` \|", layout, re.M))
    expected = {f"mean_tf/{p.name}/" if p.is_dir() else f"mean_tf/{p.name}" for p in (ROOT / "mean_tf").iterdir()
                if ((p / "__init__.py").is_file() or (p.suffix == ".py" and p.stem != "__init__"))}
    expected |= {"pipeline/", "benchmarks/"}
    assert expected - listed == set(), f"docs/design.md's Layout lacks {sorted(expected - listed)}"
    assert listed - expected == set(), f"docs/design.md's Layout names {sorted(listed - expected)}, which do not exist"


def test_every_contract_name_is_defined_once():
    from mean_tf import contract

    names = [n for n in vars(contract) if n.isupper()] + ["ALREADY_SERVED"]
    definitions = defaultdict(list)
    for module, path in _sources():
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
                node, ast.AnnAssign) else []
            for target in targets:
                if isinstance(target, ast.Name) and target.id in names:
                    definitions[target.id].append(module)
    twice = {name: where for name, where in definitions.items() if len(where) > 1}
    assert not twice, f"defined more than once: {twice}"
    assert set(definitions) == set(names)


def test_the_wheel_ships_no_performance_suite(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True, timeout=300)
    wheel = next(tmp_path.glob("mean_tf-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("mean_tf/models/") for n in names) and any(n.startswith("pipeline/") for n in names)
    assert not [n for n in names if n.startswith("benchmarks/") or "/perf/" in n or n.endswith("perf.py")]
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "pipeline = pipeline.commands:register_pipeline" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_the_readme_pipeline_flags_are_the_settings():
    import mean_tf  # noqa: F401
    from pipeline import configs

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "\n".join(configs.settings_table()) in readme
