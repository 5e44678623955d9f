"""The runtime names no service, sandbox or partner: it learns them all from the declarations."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import waybill_runtime
from waybill_runtime.local.registry import installed_sandboxes, load_services

RUNTIME = Path(waybill_runtime.__file__).parent


def _mesh_names() -> set[str]:
    names: set[str] = set()
    for name, service in load_services().items():
        names |= {name, *(partner.name for partner in service.partners)}
    for name, sandbox in installed_sandboxes().items():
        names |= {name, *sandbox.partners}
    return names


def _docstring_lines(source: str) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                first = body[0]
                lines |= set(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return lines


def mentions(source: str, pattern: re.Pattern[str]) -> list[tuple[int, str]]:
    """Names matched in code, strings and comments, docstrings left out."""
    docstrings = _docstring_lines(source)
    found = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in (tokenize.NAME, tokenize.STRING, tokenize.COMMENT):
            continue
        if token.type == tokenize.STRING and token.start[0] in docstrings:
            continue
        for match in pattern.finditer(token.string):
            found.append((token.start[0], match.group(0)))
    return found


def test_the_runtime_names_no_service_sandbox_or_partner_outside_docstrings() -> None:
    names = _mesh_names()
    # The mesh this repository installs: the check would pass vacuously without it.
    assert {"orchestrator", "odoo", "carrier-a"} <= names
    spellings = {variant for n in names for variant in (n, n.replace("-", "_"))}
    pattern = re.compile(
        r"(?<![A-Za-z])("
        + "|".join(sorted(map(re.escape, spellings), key=len, reverse=True))
        + r")(?![A-Za-z])",
        re.IGNORECASE,
    )
    offenders = [
        f"{path.relative_to(RUNTIME.parent)}:{line}: {word}"
        for path in sorted(RUNTIME.rglob("*.py"))
        for line, word in mentions(path.read_text(), pattern)
    ]
    assert offenders == []


def test_the_check_finds_a_name_in_code_comments_and_strings_but_not_in_docstrings() -> None:
    pattern = re.compile(r"(?<![A-Za-z])(orchestrator)(?![A-Za-z])", re.IGNORECASE)
    source = (
        '"""The orchestrator, in a docstring."""\n'
        "orchestrator = 1  # the Orchestrator\n"
        'name = "orchestrator"\n'
    )
    assert [line for line, _ in mentions(source, pattern)] == [2, 2, 3]
