"""Reading an image recipe without a Docker engine: the Dockerfile's stages and instructions,
and which files `.dockerignore` keeps out of the build context."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    text: str  # the rest of the line, continuations joined

    def exec_form(self) -> list[str] | None:
        """The JSON array form's items (``CMD ["a", "b"]``), None for the shell form."""
        text = self.text
        if self.keyword == "HEALTHCHECK":
            text = text.split(" CMD ", 1)[1].strip() if " CMD " in f" {text}" else ""
        if not text.startswith("["):
            return None
        items = json.loads(text)
        assert isinstance(items, list)
        return [str(item) for item in items]

    def words(self) -> list[str]:
        return shlex.split(self.text)

    def flags(self) -> dict[str, str]:
        """``--name=value`` flags before the arguments (COPY --from=build ...)."""
        found: dict[str, str] = {}
        for word in self.words():
            if not word.startswith("--"):
                break
            name, _, value = word[2:].partition("=")
            found[name] = value
        return found

    def arguments(self) -> list[str]:
        """The words after the flags."""
        words = self.words()
        while words and words[0].startswith("--"):
            words.pop(0)
        return words


@dataclass
class Stage:
    base: str  # as written after FROM, before AS
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def args(self) -> dict[str, str | None]:
        """The stage's ARGs with their defaults (None: no default)."""
        found: dict[str, str | None] = {}
        for instruction in self.all("ARG"):
            name, equals, default = instruction.text.partition("=")
            found[name.strip()] = default.strip().strip('"') if equals else None
        return found

    def assignments(self, keyword: str) -> dict[str, str]:
        """``KEY=value`` pairs of its ENV or LABEL instructions."""
        found: dict[str, str] = {}
        for instruction in self.all(keyword):
            for word in instruction.words():
                key, _, value = word.partition("=")
                found[key] = value
        return found


@dataclass
class Dockerfile:
    global_args: dict[str, str | None]
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    def chain(self, target: Stage, build_args: dict[str, str]) -> list[Stage]:
        """``target`` and the stages it is built FROM, nearest first."""
        chain = [target]
        names = {s.name for s in self.stages}
        while True:
            base = expand(chain[-1].base, {**self.defaults(), **build_args})
            if base not in names:
                return chain
            chain.append(self.stage(base))

    def defaults(self) -> dict[str, str]:
        return {k: v for k, v in self.global_args.items() if v is not None}


def _logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not current):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1].rstrip() + " "
            continue
        current += stripped
        if current.strip():
            lines.append(current.strip())
        current = ""
    if current.strip():
        lines.append(current.strip())
    return lines


def parse_dockerfile(path: Path) -> Dockerfile:
    global_args: dict[str, str | None] = {}
    stages: list[Stage] = []
    for line in _logical_lines(path.read_text()):
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            words = rest.split()
            words = [w for w in words if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif not stages:
            assert keyword == "ARG", f"only ARG may come before the first FROM, not {keyword}"
            name, equals, default = rest.partition("=")
            global_args[name.strip()] = default.strip() if equals else None
        else:
            stages[-1].instructions.append(Instruction(keyword, rest))
    return Dockerfile(global_args, stages)


def expand(text: str, values: dict[str, str]) -> str:
    """``text`` with ``${NAME}`` and ``$NAME`` replaced from ``values`` (unknown ones kept)."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return values.get(name, match.group(0))

    return _VARIABLE.sub(replace, text)


# -- .dockerignore -----------------------------------------------------------------------


def _pattern(pattern: str) -> re.Pattern[str]:
    """Docker's matching: Go's filepath.Match plus ``**``; a match excludes what is below."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + "(?:/.*)?")


@dataclass(frozen=True)
class DockerIgnore:
    rules: tuple[tuple[bool, re.Pattern[str]], ...]  # (is an exception, pattern)

    @classmethod
    def read(cls, path: Path) -> DockerIgnore:
        rules = []
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            exception = line.startswith("!")
            cleaned = line.removeprefix("!").strip().strip("/")
            rules.append((exception, _pattern(cleaned)))
        return cls(tuple(rules))

    def excludes(self, relative: str) -> bool:
        """Whether the file at ``relative`` (to the context root) stays out of the context."""
        excluded = False
        for exception, pattern in self.rules:  # the last matching rule decides
            if pattern.fullmatch(relative):
                excluded = not exception
        return excluded
