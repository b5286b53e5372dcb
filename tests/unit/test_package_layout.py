"""The house rules of the source tree, checked on the code itself (read with ``ast``, nothing imported).

- The library (``include/retrainer``) is the retraining loop: it imports neither the launcher
  (``retrainer_launcher``), nor the Airflow glue (``retrainer_airflow``), nor a plugin, nor Airflow.
- Plugins never import the launcher (the production API server must not load the dev launcher).
- No import cycles inside the library, lazy imports inside functions included (they cycle at run time).
- No module over ~600 lines and no function over ~80 lines, unless the module's docstring says why
  (a line starting with ``Long because``).
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO_ROOT

INCLUDE = REPO_ROOT / "include"
LIBRARY = INCLUDE / "retrainer"
PLUGINS = REPO_ROOT / "plugins"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
PLUGIN_MODULES = {p.stem for p in PLUGINS.glob("*.py")}


def _module_name(path: Path) -> str:
    # Plugins are top-level modules (Airflow puts plugins/ on sys.path).
    parts = list(path.relative_to(INCLUDE if path.is_relative_to(INCLUDE) else path.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at module level or inside functions, as absolute dotted names
    (``from a import b`` counts as ``a.b`` and ``a``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def _library_files() -> list[Path]:
    return sorted(LIBRARY.rglob("*.py"))


def test_the_library_imports_no_launcher_glue_plugin_or_airflow() -> None:
    offenders = []
    for path in _library_files():
        for name in _imports(path):
            top = name.split(".")[0]
            if top in {"retrainer_launcher", "retrainer_airflow", "airflow"} or top in PLUGIN_MODULES:
                offenders.append(f"{path.relative_to(REPO_ROOT)} imports {name}")
    assert not offenders, "\n".join(offenders)


def test_no_plugin_imports_the_launcher() -> None:
    offenders = [f"{path.name} imports {name}" for path in sorted(PLUGINS.glob("*.py"))
                 for name in _imports(path) if name.split(".")[0] == "retrainer_launcher"]
    assert not offenders, "\n".join(offenders)


def test_the_library_has_no_import_cycle() -> None:
    modules = {_module_name(p): p for p in _library_files()}
    graph = {name: {d for d in _imports(path) if d in modules and d != name} for name, path in modules.items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in sorted(graph[name]):
            if state.get(dep) == 1:
                cycles.append(path[path.index(dep):] + [dep] if dep in path else [name, dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def _says_why_it_is_long(tree: ast.Module) -> bool:
    doc = ast.get_docstring(tree) or ""
    return any(line.strip().startswith("Long because") for line in doc.splitlines())


def test_modules_and_functions_stay_small_or_say_why() -> None:
    too_long = []
    for path in [*_library_files(), *sorted((INCLUDE / "retrainer_airflow").rglob("*.py")),
                 *sorted((INCLUDE / "retrainer_launcher").rglob("*.py")), *sorted(PLUGINS.glob("*.py"))]:
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        if _says_why_it_is_long(tree):
            continue
        where = path.relative_to(REPO_ROOT)
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{where}: {len(text.splitlines())} lines")
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{where}:{node.lineno} {node.name}() is {length} lines")
    assert not too_long, "\n".join(too_long)
