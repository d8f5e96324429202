"""The package layout is the architecture: imports only run downward, and never in a circle.

Every module of ``minitl/`` is parsed with ``ast`` (nothing is imported), each
import (lazy ones inside functions included) is resolved to the module it
names, and each module is mapped to its folder's rank. A module may import its
own folder and the folders below it; folders of one rank do not import each
other; and the module graph has no cycle.
"""
from __future__ import annotations

import ast
import os
import textwrap

import minitl

ROOT = os.path.dirname(os.path.abspath(minitl.__file__))

# Bottom to top (docs/architecture.md). "" is the face: minitl/__init__.py, cuda.py, __main__.py;
# the command line (cli/) stands on top: it may use the face (minitl.cuda, minitl.__version__).
RANKS = {
    "core": 0, "kernels": 1, "ops": 2, "nn": 3, "io": 3, "optim": 4, "models": 4, "data": 4,
    "train": 5, "transfer": 6, "experiments": 7, "": 8, "cli": 9,
}
# The compiled extensions sit at the package root but belong to the kernels layer.
EXTENSIONS = {"minitl._C": "kernels", "minitl._C_cuda": "kernels"}


def _modules(root: str) -> dict[str, str]:
    """``{dotted module name: file path}`` for every .py file under ``root``."""
    out = {}
    base = os.path.basename(root)
    for folder, _, files in os.walk(root):
        for f in files:
            if not f.endswith(".py"):
                continue
            rel = os.path.relpath(os.path.join(folder, f), os.path.dirname(root))[:-3].split(os.sep)
            if rel[-1] == "__init__":
                rel = rel[:-1]
            out[".".join(rel)] = os.path.join(folder, f)
    assert base in out, f"{root} is not a package"
    return out


def _imports(name: str, path: str, modules: dict) -> set[str]:
    """The minitl modules that ``name`` imports, anywhere in its body."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    is_package = os.path.basename(path) == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    top = name.split(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
            found.update(t for t in targets if t.split(".")[0] == top)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            if base.split(".")[0] != top:
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                # ``from pkg import module`` imports the module; ``from pkg import name`` the package.
                found.add(sub if sub in modules or sub in EXTENSIONS else base)
    found.discard(name)
    return found


def _folder(name: str) -> str:
    if name in EXTENSIONS:
        return EXTENSIONS[name]
    if name.endswith(".__main__"):  # `python -m minitl` is the command line
        return "cli"
    parts = name.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in RANKS) else ""


def layer_violations(root: str) -> list[str]:
    """Every upward or sideways import and every import cycle under package ``root``, in words."""
    modules = _modules(root)
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    problems = []
    for name, targets in sorted(graph.items()):
        here = _folder(name)
        if here not in RANKS:
            problems.append(f"{name}: folder {here!r} has no rank (add it to RANKS and docs/architecture.md)")
            continue
        for target in sorted(targets):
            there = _folder(target)
            if there == here or there not in RANKS:
                continue
            if RANKS[there] > RANKS[here]:
                problems.append(f"upward import: {name} ({here or 'face'}, rank {RANKS[here]}) imports "
                                f"{target} ({there or 'face'}, rank {RANKS[there]})")
            elif RANKS[there] == RANKS[here]:
                problems.append(f"sideways import: {name} ({here}) imports {target} ({there}), "
                                f"a folder of the same rank")
    problems.extend(f"import cycle: {' -> '.join(c)}" for c in _cycles(graph))
    return problems


def _cycles(graph: dict[str, set]) -> list[list[str]]:
    """One cycle through each strongly connected group of modules (iterative DFS)."""
    colour, cycles, stack_of = {}, [], {}
    for start in sorted(graph):
        if start in colour:
            continue
        path, iters = [start], [iter(sorted(graph[start]))]
        colour[start], stack_of[start] = 1, 0
        while path:
            nxt = next(iters[-1], None)
            if nxt is None:
                colour[path[-1]] = 2
                stack_of.pop(path[-1], None)
                path.pop()
                iters.pop()
            elif nxt in graph and colour.get(nxt) == 1:
                cycles.append(path[stack_of[nxt]:] + [nxt])
            elif nxt in graph and nxt not in colour:
                colour[nxt], stack_of[nxt] = 1, len(path)
                path.append(nxt)
                iters.append(iter(sorted(graph[nxt])))
    return cycles


def test_minitl_imports_only_run_downward_and_never_in_a_circle():
    problems = layer_violations(ROOT)
    assert not problems, "\n".join(problems)


def test_every_module_sits_in_a_layer_folder():
    flat = sorted(f for f in os.listdir(ROOT) if f.endswith(".py"))
    assert flat == ["__init__.py", "__main__.py", "cuda.py"], flat
    folders = sorted(d for d in os.listdir(ROOT) if os.path.isfile(os.path.join(ROOT, d, "__init__.py")))
    assert set(folders) == set(RANKS) - {""}, folders


def _package(tmp_path, files: dict[str, str]) -> str:
    root = tmp_path / "minitl"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return str(root)


def test_the_check_names_an_upward_import_even_a_lazy_one(tmp_path):
    root = _package(tmp_path, {
        "__init__.py": "", "core/__init__.py": "", "nn/__init__.py": "",
        "nn/layers.py": "from ..core import tensor\n",
        "core/tensor.py": "def f():\n    from ..nn import layers\n",
    })
    problems = layer_violations(root)
    assert any("upward import: minitl.core.tensor (core, rank 0) imports minitl.nn.layers" in p for p in problems), \
        problems


def test_the_check_names_a_sideways_import_and_a_cycle(tmp_path):
    root = _package(tmp_path, {
        "__init__.py": "", "data/__init__.py": "", "models/__init__.py": "", "core/__init__.py": "",
        "data/loader.py": "from ..models import lenet\n",
        "models/lenet.py": "",
        "core/a.py": "from . import b\n",
        "core/b.py": "from .a import thing\n",
    })
    problems = layer_violations(root)
    assert any(p.startswith("sideways import: minitl.data.loader (data) imports minitl.models.lenet") for p in problems)
    assert any(p.startswith("import cycle:") and "minitl.core.a" in p and "minitl.core.b" in p for p in problems)


def test_tensor_lists_every_operator_where_it_is_defined():
    # core/tensor.py names what minitl.ops binds, so a reader of Tensor finds __add__.
    bound = [n for n in minitl.Tensor.INSTALLED if n not in vars(minitl.Tensor) or vars(minitl.Tensor)[n] is None]
    assert not bound
    src = open(os.path.join(ROOT, "core", "tensor.py"), encoding="utf-8").read()
    for op in ("Add", "MatMul", "GetItem", "Sum", "Relu", "ToDevice"):
        assert op in src, f"core/tensor.py does not say where {op} comes from"


def test_the_face_reaches_every_layer_as_an_attribute():
    import subprocess
    import sys

    code = ("import minitl; minitl.optim.SGD; minitl.nn.Linear; minitl.models.LeNet; minitl.data.DataLoader; "
            "minitl.io.save; minitl.transfer.prepare; minitl.experiments.Grid; minitl.train.fit; "
            "minitl.cuda.is_available")
    subprocess.run([sys.executable, "-c", code], check=True)
