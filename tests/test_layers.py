"""The package's layers: every module imports only its own layer and those below, with no
cycle between modules, lazy imports inside functions included. And the command line's help
and argument errors load no torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import obfaudit

ROOT = Path(obfaudit.__file__).parent

#: Bottom to top. A module may import from its own layer and any below.
LAYERS = [
    {"errors", "_version", "threat", "train_config", "_settings", "_io", "records", "results"},
    {"data"},
    {"models"},
    {"train"},
    {"transforms"},
    {"defences"},
    {"attacks", "cost"},
    {"report", "gate"},  # reads records, draws figures and pages; the runs below write it at their end
    {"experiments"},
    {"serve"},
    {"audit"},  # the audit engine: one audit and its sweeps, planned on experiments' stage engine
    {"study"},  # the reproduction of the study: its ObfNets audited through the audit engine
    {"commands"},
    {"cli", "__init__", "__main__"},
]


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        out[".".join(["obfaudit", *parts])] = path
    return out


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """Every obfaudit module ``module`` imports, anywhere in its code."""
    found = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + [base]
                ).strip(".")
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module and name.startswith("obfaudit."):
                found.add(name)
    return found


def test_no_module_imports_upward_and_there_is_no_cycle():
    modules = _modules()
    graph = {m: _imports(m, p, set(modules)) for m, p in modules.items()}
    upward = [f"{m} imports {d}" for m, deps in graph.items() for d in deps if _layer(d) > _layer(m)]
    assert not upward, upward
    # a cycle between modules (packages' __init__ re-exports aside: they import their own modules)
    edges = {
        m: {
            d
            for d in deps
            if not (d in modules and modules[d].name == "__init__.py" and m.startswith(d + "."))
        }
        for m, deps in graph.items()
    }
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in sorted(edges.get(m, ())):
            if state.get(d) == 1:
                cycles.append(stack[stack.index(d) :] + [d] if d in stack else [m, d])
            elif d not in state:
                visit(d, [*stack, d])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    assert not cycles, cycles


def test_help_and_argument_errors_load_no_torch():
    """``obfaudit --help`` and bad arguments of any command answer without loading torch (a command's
    own --help may: it lists the registered attacks)."""
    code = (
        "import sys\n"
        "from obfaudit.cli import main\n"
        "for argv in (['--help'], ['audit', '--epochs', '-1'], ['train', 'infnet', '--seed', '-1'],\n"
        "             ['cost', '--input', '224x224'], ['nothing']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted(m for m in ('torch', 'numpy', 'scipy', 'sklearn') if m in sys.modules))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == "[]", r.stdout[-500:]
