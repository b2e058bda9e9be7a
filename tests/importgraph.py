"""What a module of `callout` imports, read from its source: every import counts, inside
functions and under ``TYPE_CHECKING`` too."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path


def imported_names(module: str, path: Path) -> Iterator[str]:
    """Dotted names ``module`` (its source at ``path``) imports; ``from a import b`` yields
    ``a`` and ``a.b`` (which may be a submodule)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            yield target
            yield from (f"{target}.{alias.name}" for alias in node.names)
