"""helpers' import graph, read from the source (ast): no cycles, and every sub-package imports only those below it.

Direction (an arrow means "may import"): cli → multimodal → text, audio → core; pretrained → core. core imports no
other part; text and audio do not import each other. Imports inside functions count too (they hide the graph).
"""

import ast
from pathlib import Path

from helpers.core.env import REPO_ROOT

HELPERS = REPO_ROOT / "helpers"
ALLOWED = {
    "core": {"core"},
    "text": {"core", "text", "pretrained"},
    "audio": {"core", "audio", "pretrained"},
    "pretrained": {"core", "pretrained"},
    "multimodal": {"core", "text", "audio", "multimodal", "pretrained"},
    "cli": {"core", "text", "audio", "multimodal", "pretrained", "cli"},
}
# Transitional edges, each with the reason; remove an entry when its reason is gone.
EXCEPTIONS = {
    # lazy registration: pipeline.get_tokenizer imports korean on the first ko-* name, korean registers into
    # pipeline on import (owner of text/pipeline + text/korean: break it with a registry both import)
    ("helpers.text.pipeline", "helpers.text.korean"),
    # finetune_text reads its CSVs with train_text.load_text_splits, train_text dispatches to finetune_text
    # (owner of cli/finetune_text: move load_text_splits to a module both import)
    ("helpers.cli.finetune_text", "helpers.cli.train_text"),
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in HELPERS.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # `from helpers.x import y`: the sub-module helpers.x.y when y is one, else helpers.x itself
                names = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules]
                names = names or [node.module]
            else:
                continue
            targets |= {n for n in names if n in modules and n != name}
        graph[name] = {t for t in targets if t != "helpers"}
    return graph


def _part(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_sub_packages_import_only_downwards():
    wrong = []
    for module, targets in import_graph().items():
        part = _part(module)
        if part not in ALLOWED:
            continue
        wrong += [
            f"{module} → {t}"
            for t in sorted(targets)
            if _part(t) is not None and _part(t) not in ALLOWED[part] and (module, t) not in EXCEPTIONS
        ]
    assert not wrong, "imports against the layering (see this test's docstring):\n" + "\n".join(wrong)


def test_no_import_cycles():
    graph = {m: {t for t in ts if (m, t) not in EXCEPTIONS} for m, ts in import_graph().items()}
    state, stack, cycles = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(" → ".join(c) for c in cycles)


def test_the_graph_sees_imports_inside_functions(tmp_path):
    # the walker must see a function-level import, or the two tests above could not fail for one
    graph = import_graph()
    assert "helpers.core.training" in graph["helpers.cli.script_loop"]
    assert "helpers.core.metrics" in graph["helpers.core.training"]
    assert "helpers.text.korean_emotion" in graph["helpers.cli.train_text"]  # imported only inside its subcommands
