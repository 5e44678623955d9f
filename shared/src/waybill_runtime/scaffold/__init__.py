"""Scaffolding a new service in a Waybill repository (what `waybill new service` does).

The files come from the templates in ``templates/`` (package data,
``string.Template`` with ``$name``-style placeholders): ``templates/service``
becomes ``services/<name>/`` (its sources under ``src/waybill_<pkg>/``) and
``templates/tests`` becomes ``tests/services/<pkg>/``. The README's subjects
and settings tables are made from the new service's own declaration, and the
package is added to the root pyproject's mypy ``mypy_path`` and strict module
list. Everything is checked before anything is written; a failure while
writing removes what was created.
"""

from __future__ import annotations

import importlib
import re
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from string import Template

from waybill_contracts import MESSAGE_TYPES, Lane
from waybill_runtime.declaration import Declaration
from waybill_runtime.errors import UserFacingError
from waybill_runtime.settings import RuntimeSettings, describe_settings

__all__ = [
    "DEFAULT_DESCRIPTION",
    "Scaffolded",
    "check_name",
    "readme_tables",
    "register_in_pyproject",
    "scaffold_service",
]

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
MAX_NAME_LENGTH = 30
"""Keeps every generated line within the repository's 100 columns."""
MAX_DESCRIPTION_LENGTH = 72
DEFAULT_DESCRIPTION = "counts the orders released for shipping"

_TEMPLATES = "templates"
_SUFFIX = ".tmpl"
_FIRST_PARTY_IMPORT = re.compile(r"^from waybill_\S+ import [^(]+$")


@dataclass
class Scaffolded:
    """What :func:`scaffold_service` created and changed, relative to the repository root."""

    name: str
    package: str
    created: list[Path] = field(default_factory=list)
    changed: list[Path] = field(default_factory=list)


def check_name(name: str) -> None:
    """Refuse a name that is not a service name (one line saying what one is)."""
    if not NAME_PATTERN.fullmatch(name) or len(name) > MAX_NAME_LENGTH:
        raise UserFacingError(
            f"{name!r} is not a valid service name: use lower-case letters, digits and "
            f"single dashes, starting with a letter, at most {MAX_NAME_LENGTH} characters "
            "(e.g. parcel-desk)"
        )


def _check_description(description: str) -> str:
    text = description.strip().rstrip(".")
    if (
        not text
        or len(text) > MAX_DESCRIPTION_LENGTH
        or not text.isprintable()
        or any(c in text for c in '"\\`$')
    ):
        raise UserFacingError(
            f"the description {description!r} does not fit: one line of at most "
            f"{MAX_DESCRIPTION_LENGTH} characters without quotes, backslashes, backticks or $"
        )
    return text


def _check_root(root: Path) -> Path:
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file() or not (root / "services").is_dir():
        raise UserFacingError(
            f"{root} is not a Waybill repository (no pyproject.toml and services/ there): "
            "run this at the repository's root or pass --root DIR"
        )
    return pyproject


def _settings_class(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-")) + "Settings"


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:] + "."


def _package_taken(root: Path, package: str) -> Path | None:
    """Where a package of that import name already lives in the repository, if anywhere."""
    for candidate in root.glob(f"*/src/{package}"):
        return candidate
    for candidate in root.glob(f"*/*/src/{package}"):
        return candidate
    return None


def _templates(folder: str) -> Iterator[tuple[str, Traversable]]:
    """(relative path without the suffix, template) of every file under ``templates/folder``."""

    def walk(node: Traversable, prefix: str) -> Iterator[tuple[str, Traversable]]:
        for child in sorted(node.iterdir(), key=lambda c: c.name):
            if child.is_dir():
                yield from walk(child, f"{prefix}{child.name}/")
            elif child.name.endswith(_SUFFIX):
                yield f"{prefix}{child.name.removesuffix(_SUFFIX)}", child

    yield from walk(resources.files(__name__).joinpath(_TEMPLATES, folder), "")


def _sort_first_party_imports(text: str) -> str:
    """Sort each run of one-line ``from waybill_... import`` lines, as ruff's isort does.

    The new package's name decides where its imports go among the runtime's
    and the contracts' (``waybill_zeta`` comes after ``waybill_runtime``).
    """
    lines = text.split("\n")
    out: list[str] = []
    run: list[str] = []
    for line in [*lines, None]:
        if line is not None and _FIRST_PARTY_IMPORT.match(line):
            run.append(line)
            continue
        out.extend(sorted(run, key=lambda imp: imp.split()[1]))
        run = []
        if line is not None:
            out.append(line)
    return "\n".join(out)


def _render(template: Traversable, values: dict[str, str]) -> str:
    text = Template(template.read_text(encoding="utf-8")).substitute(values)
    return _sort_first_party_imports(text) if template.name.endswith(".py.tmpl") else text


# -- the root pyproject ------------------------------------------------------------------


def _insert_in_list(text: str, opening: re.Pattern[str], entry: str, what: str) -> str:
    """Add ``"entry",`` as the last item of the TOML list that ``opening`` finds."""
    match = opening.search(text)
    if match is None:
        raise UserFacingError(
            f"cannot find {what} in the root pyproject.toml: add {entry!r} there by hand"
        )
    start = match.end()
    end = text.index("\n]", start)
    items = text[start:end]
    if f'"{entry}"' in items:
        return text
    indent = re.search(r"\n([ \t]+)\S", items)
    prefix = indent.group(1) if indent else "    "
    return f'{text[:end]}\n{prefix}"{entry}",{text[end:]}'


_MYPY_PATH = re.compile(r"^mypy_path = \[(?=\n)", re.MULTILINE)
# The strict override's module list: the one that names the runtime.
_STRICT_MODULES = re.compile(
    r'^module = \[(?=\n(?:[ \t]+"[^"\n]*",\n)*?[ \t]+"waybill_runtime\.\*")', re.MULTILINE
)


def register_in_pyproject(text: str, name: str, package: str) -> str:
    """The root pyproject's text with the service in mypy's path and strict module list."""
    text = _insert_in_list(text, _MYPY_PATH, f"services/{name}/src", "[tool.mypy] mypy_path")
    return _insert_in_list(
        text, _STRICT_MODULES, f"{package}.*", "the strict mypy override's module list"
    )


# -- the README's tables, from the declaration -------------------------------------------


def _declaration_of(src: Path, package: str) -> Declaration:
    """Import the new service from its sources (it is not installed yet) and describe it."""
    sys.path.insert(0, str(src))
    try:
        module = importlib.import_module(f"{package}.app")
        declaration: Declaration = module.service.describe()
        return declaration
    finally:
        sys.path.remove(str(src))
        for loaded in [m for m in sys.modules if m == package or m.startswith(f"{package}.")]:
            del sys.modules[loaded]


def readme_tables(declaration: Declaration) -> dict[str, str]:
    """The subjects table, the consumers sentence and the settings table of a README."""
    class_of = {t.ce_type(): t.__name__ for t in MESSAGE_TYPES}
    rows = ["| direction | subject | message |", "|---|---|---|"]
    # One row per type: its express twin (the subject + ``.express``) is in the sentence below.
    for consumed in (c for c in declaration.consumes if c.lane is Lane.STANDARD):
        kind = "command" if ".cmd." in consumed.subject else "event"
        rows.append(f"| in ({kind}) | `{consumed.subject}` | `{class_of[consumed.type]}` |")
    outgoing = (("out (event)", declaration.publishes), ("out (command)", declaration.sends))
    for label, published in outgoing:
        rows.extend(f"| {label} | `{p.subject}` | `{class_of[p.type]}` |" for p in published)
    if not declaration.publishes and not declaration.sends:
        rows.append("| out | | nothing yet: the contracts name no message of this service |")
    durables = sorted({c.durable for c in declaration.consumes})
    consumers = (
        f"The messages are read by the durable consumer{'s' if len(durables) > 1 else ''} "
        + ", ".join(f"`{d}`" for d in durables)
        + (
            " (those ending in `-express` read each subject's express twin, "
            "the subject followed by `.express`)"
            if any(c.lane is not Lane.STANDARD for c in declaration.consumes)
            else ""
        )
        + ". It owns the KV bucket"
        + ("s " if len(declaration.buckets) > 1 else " ")
        + ", ".join(f"`{b.bucket}`" for b in declaration.buckets)
        + "."
    )
    common = {info.env_var for info in describe_settings(RuntimeSettings)}
    settings = ["| variable | default | meaning |", "|---|---|---|"]
    for s in declaration.settings:
        if s.env_var in common:
            continue
        default = "required" if s.required else f"`{s.default}`" if s.default else ""
        settings.append(f"| `{s.env_var}` | {default} | {s.description} |")
    return {
        "subjects_table": "\n".join(rows),
        "consumers_sentence": consumers,
        "settings_table": "\n".join(settings),
    }


# -- scaffolding -------------------------------------------------------------------------


def scaffold_service(
    root: Path, name: str, *, description: str = DEFAULT_DESCRIPTION
) -> Scaffolded:
    """Create service ``name`` in the repository at ``root``; refuse before writing anything."""
    check_name(name)
    text = _check_description(description)
    pyproject = _check_root(root)
    pkg = name.replace("-", "_")
    package = f"waybill_{pkg}"
    service_dir = root / "services" / name
    tests_dir = root / "tests" / "services" / pkg
    for existing in (service_dir, tests_dir):
        if existing.exists():
            raise UserFacingError(f"{existing.relative_to(root)} already exists: pick another name")
    taken = _package_taken(root, package)
    if taken is not None:
        raise UserFacingError(
            f"the package {package} already exists ({taken.relative_to(root)}): pick another name"
        )
    pyproject_text = register_in_pyproject(pyproject.read_text(), name, package)

    values = {
        "name": name,
        "pkg": pkg,
        "package": package,
        "distribution": f"waybill-{name}",
        "settings_class": _settings_class(name),
        "description": text,
        "description_sentence": _sentence(text),
    }
    src = service_dir / "src"
    targets = {"service": service_dir, "tests": tests_dir}
    done = Scaffolded(name=name, package=package)
    try:
        readme: Traversable | None = None
        for folder, target in targets.items():
            for relative, template in _templates(folder):
                if folder == "service" and relative.endswith(".py"):
                    path = src / package / relative
                elif folder == "service" and relative == "README.md":
                    readme = template
                    continue
                else:
                    path = target / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(_render(template, values), encoding="utf-8")
                done.created.append(path.relative_to(root))
        (src / package / "py.typed").write_text("")
        done.created.append((src / package / "py.typed").relative_to(root))
        if readme is not None:
            values.update(readme_tables(_declaration_of(src, package)))
            (service_dir / "README.md").write_text(_render(readme, values), encoding="utf-8")
            done.created.append((service_dir / "README.md").relative_to(root))
    except BaseException:
        for target in targets.values():
            shutil.rmtree(target, ignore_errors=True)
        raise
    pyproject.write_text(pyproject_text)
    done.changed.append(pyproject.relative_to(root))
    return done
