"""The package is layered: each module imports only from its own layer or those below,
in-function imports included, and the module graph has no cycle.

1 ``core`` (pure definitions), 2 ``runtime`` (process state), 3 ``kernels`` (the ``cpu``
and ``cuda`` twins, which never import each other), 4 ``backend``, 5 ``ops`` (the public
operations), 6 the workflows (``calibration``, ``io``, ``dask``, ``integrations``),
7 ``cli`` and ``__main__``, 8 the package's ``__init__`` (re-exports only).
"""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent / "fastq"
LAYERS = {"core": 1, "runtime": 2, "kernels": 3, "backend": 4, "ops": 5, "calibration": 6,
          "io": 6, "dask": 6, "integrations": 6, "cli": 7, "__main__": 7}
MAX_MODULES_PER_FOLDER = 8  # (the package's __init__ aside)
MAX_LINES_PER_MODULE = 420  # (about 400: room for a docstring to grow, not for a second module)


def module_name(path):
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(name):
    parts = name.split(".")
    if len(parts) == 1:
        return 8
    return LAYERS[parts[1]]


def imports(path):
    """Every fastq module ``path`` imports (absolute names), at any depth of its code."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "fastq"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").split(".")[0] == "fastq":
                target = node.module
            else:
                continue
            for alias in node.names:  # ``from . import x``: x is a module or a name
                sub = f"{target}.{alias.name}"
                if (ROOT.parent / sub.replace(".", "/")).with_suffix(".py").exists() or \
                        (ROOT.parent / sub.replace(".", "/") / "__init__.py").exists():
                    found.add(sub)
                else:
                    found.add(target)
    return found


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_only_downward(name):
    own = layer(name)
    for target in imports(MODULES[name]):
        if target == "fastq" and own == 8:
            continue
        assert layer(target) <= own, f"{name} (layer {own}) imports {target} (layer {layer(target)})"
        if name.startswith("fastq.kernels.cuda"):
            assert not target.startswith("fastq.kernels.cpu"), f"{name} imports its CPU twin"
        if name.startswith("fastq.kernels.cpu"):
            assert not target.startswith("fastq.kernels.cuda"), f"{name} imports its CUDA twin"


def test_no_import_cycles():
    graph = {n: {t for t in imports(p) if t in MODULES and t != n} for n, p in MODULES.items()}
    # a package's __init__ imported by its own modules is not a cycle through code
    state = {}

    def visit(n, path):
        state[n] = 1
        for t in graph[n]:
            if n.startswith(t + ".") or t.startswith(n + "."):
                continue  # (a package and its own modules)
            if state.get(t) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path + [t]))
            if t not in state:
                visit(t, path + [t])
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [n])


def test_folders_stay_small():
    """The package's folders, and the tests' and benchmarks' too."""
    roots = [ROOT] + [ROOT.parent / name for name in ("tests", "bench")]
    for folder in roots + [p for r in roots for p in r.rglob("*")
                           if p.is_dir() and p.name != "__pycache__"]:
        modules = [p for p in folder.glob("*.py") if p.name != "__init__.py"]
        assert len(modules) <= MAX_MODULES_PER_FOLDER, f"{folder}: {len(modules)} modules"


def test_modules_stay_short():
    for path in ROOT.rglob("*.py"):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines <= MAX_LINES_PER_MODULE, f"{path}: {lines} lines"


def test_package_exports_exactly_the_public_names():
    import fastq
    assert sorted(fastq.__all__) == sorted(n for n in vars(fastq) if not n.startswith("_")
                                           and n not in ("core", "runtime", "kernels",
                                                         "backend", "ops", "cli", "calibration",
                                                         "io", "dask", "integrations"))
