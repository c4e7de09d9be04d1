"""Fuzz target for the rule loader: a mangled rule file either loads or is refused with
problems that each name the file and a line, never an unexpected exception."""

from __future__ import annotations

from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from lictor.rules.loader import bundled_pack, read_rule_file
from lictor.rules.tool_catalog import CatalogBuilder

SOURCES = sorted(p for name in ("default", "owasp-agentic", "examples")
                 for p in bundled_pack(name).glob("*.yaml"))


@st.composite
def mangled(draw: st.DrawFn) -> tuple[Path, str]:
    """A bundled rule file with lines dropped, duplicated, cut or replaced by noise."""
    path = draw(st.sampled_from(SOURCES))
    lines = path.read_text("utf-8").splitlines()
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["drop", "dup", "cut", "noise", "indent"]))
        if op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "cut":
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
        elif op == "noise":
            lines[i] = draw(st.text(alphabet=" :-[]{}'\"#&*!|>%@`\x00\t\ufeffab1", max_size=20))
        else:
            lines[i] = "  " + lines[i]
    return path, "\n".join(lines)


@given(mangled())
@example((SOURCES[0], "\x00\nrules: []"))  # found by this target: NUL crashed the loader
@example((SOURCES[0], "rules:\n  - id: x\x07\n"))
def test_mangled_rule_files_load_or_name_file_and_line(case: tuple[Path, str]) -> None:
    path, text = case
    problems: list[str] = []
    rules = read_rule_file(path, text, problems, CatalogBuilder())
    if problems:
        assert rules == []
        for problem in problems:
            assert problem.startswith(f"{path}:") or problem.startswith(f"{path.name}:"), problem
            where = problem.split(":", 2)[1]
            assert where.isdigit(), problem
