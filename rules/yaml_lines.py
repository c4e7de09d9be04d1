"""YAML loading that remembers where every value came from, so errors can name the line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(slots=True)
class LocatedYaml:
    """Parsed data plus the node tree, to map a pydantic error location to a line."""

    data: Any
    root: yaml.Node | None

    def line_of(self, loc: tuple[str | int, ...]) -> int:
        """1-based line of the deepest node on `loc` that exists (1 for an empty file)."""
        node = self.root
        if node is None:
            return 1
        line = node.start_mark.line + 1
        for part in loc:
            child = _child(node, part)
            if child is None:
                break
            node = child
            line = node.start_mark.line + 1
        return line


def _child(node: yaml.Node, part: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                return value
    elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and (
        0 <= part < len(node.value)
    ):
        return node.value[part]
    return None


class YamlSyntaxError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def _forbidden_character(text: str, exc: yaml.reader.ReaderError) -> YamlSyntaxError:
    """A character YAML does not allow (NUL, most controls), with its line."""
    line = text.count("\n", 0, max(exc.position, 0)) + 1
    char = exc.character if isinstance(exc.character, int) else ord(exc.character[:1] or " ")
    return YamlSyntaxError(line, f"character U+{char:04X} is not allowed in YAML: remove it")


def load_located(text: str) -> LocatedYaml:
    """Parse one YAML document with the safe loader, keeping the node tree."""
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:
        raise _forbidden_character(text, exc) from exc
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.reader.ReaderError as exc:
        raise _forbidden_character(text, exc) from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise YamlSyntaxError(line, f"{exc.problem or 'invalid YAML'}") from exc
    finally:
        loader.dispose()
    return LocatedYaml(data=data, root=root)


def short_source(path: Path, line: int) -> str:
    """`pack/file:line`: where a rule or policy came from, short enough for explanations
    yet unambiguous across packs (two packs may both have an `agent_actions.yaml`)."""
    name = f"{path.parent.name}/{path.name}" if path.parent.name else path.name
    return f"{name}:{line}"
