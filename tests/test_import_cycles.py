"""No import cycles inside audioldm/: every import statement (at module level or inside a function, read statically
with ast) is an edge from its module to the audioldm module it names; the graph must have no cycle."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "audioldm"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PKG.rglob("*.py")}


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    graph = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - node.level + 1]
                    src = ".".join(base + ([node.module] if node.module else []))
                else:
                    src = node.module or ""
                # "from X import name": name may be a submodule of package X
                targets = [f"{src}.{a.name}" if f"{src}.{a.name}" in mods else src for a in node.names]
            for t in targets:
                while t and t not in mods and "." in t:  # "import audioldm.data.latents" -> that module
                    t = t.rpartition(".")[0]
                if t in mods and t != mod:
                    graph[mod].add(t)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        state[m] = 2
        stack.pop()
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_the_graph_is_read():
    g = import_graph()
    assert "audioldm.conditioning" in g["audioldm.pipeline.requests"]  # a module-level import
    assert "audioldm.lora" in g["audioldm.pipeline.model"]  # an import inside a method
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_nothing_imports_the_cli():
    """audioldm/cli.py is the top of the house: no library module, recipe or bench script imports from it (what they
    need, such as default_model(), lives in audioldm.pretrained); tests import only its main()."""
    root = PKG.parent
    offenders = [m for m, deps in import_graph().items() if "audioldm.cli" in deps]
    for path in [*root.glob("recipes/**/*.py"), *root.glob("bench/**/*.py"), *root.glob("tests/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module == "audioldm.cli":
                if "tests" not in path.parts or [a.name for a in node.names] != ["main"]:
                    offenders.append(str(path.relative_to(root)))
            elif isinstance(node, ast.Import) and any(a.name == "audioldm.cli" for a in node.names):
                offenders.append(str(path.relative_to(root)))
    assert not offenders, offenders
