"""The catalog in rule files (teams, agents, tools, MCP servers) compiled for Cedar and
the engine.

Every `catalog:` section of every rule file is merged here; a name defined twice is an
error naming both places. From the merged catalog come Cedar's entities, the `Arguments`
type of lictor's Cedar schema, and one argument rule per tool with an argument schema.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from lictor.rules.schema import ArgumentConstraint, Catalog
from lictor.rules.yaml_lines import LocatedYaml, short_source

# Cedar's type for each argument type a catalog may declare; the others stay out of Cedar.
CEDAR_TYPES = {"string": "String", "integer": "Long", "number": "Long", "boolean": "Bool"}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(slots=True, frozen=True)
class ServerInfo:
    """An MCP server as Cedar's entity attributes see it."""

    risk: str
    owner: str


@dataclass(slots=True, frozen=True)
class ToolInfo(ServerInfo):
    amount_argument: str  # the argument Cedar sees as `context.amount`


@dataclass(slots=True, frozen=True)
class CatalogTools:
    """A tool's argument schema, as a rule: `catalog.<tool>.arguments`."""

    tool: str
    constraints: dict[str, ArgumentConstraint]
    source: str  # pack/file:line


@dataclass(slots=True, frozen=True)
class CatalogSnapshot:
    tools: dict[str, ToolInfo] = field(default_factory=dict)
    teams: dict[str, str] = field(default_factory=dict)  # team -> tenant
    agents: dict[str, tuple[str, str]] = field(default_factory=dict)  # agent -> team, tenant
    mcp_servers: dict[str, ServerInfo] = field(default_factory=dict)
    argument_types: dict[str, str] = field(default_factory=dict)  # name -> Cedar type
    argument_rules: tuple[CatalogTools, ...] = ()


class CatalogBuilder:
    """Collects the catalogs of several files, noting where each name was defined."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], str] = {}
        self._types: dict[str, tuple[str, str]] = {}  # argument -> (Cedar type, where)
        self.tools: dict[str, ToolInfo] = {}
        self.teams: dict[str, str] = {}
        self.agents: dict[str, tuple[str, str]] = {}
        self.mcp_servers: dict[str, ServerInfo] = {}
        self.rules: list[CatalogTools] = []

    def _first(self, kind: str, name: str, where: str, problems: list[str]) -> bool:
        earlier = self._seen.setdefault((kind, name), where)
        if earlier != where:
            problems.append(f"{where}: {kind} {name!r} is already in the catalog at {earlier}")
            return False
        return True

    def add(self, path: Path, doc: LocatedYaml, catalog: Catalog, problems: list[str]) -> None:
        def where(*loc: str) -> str:
            return f"{path}:{doc.line_of(('catalog', *loc))}"

        for name, team in catalog.teams.items():
            if self._first("team", name, where("teams", name), problems):
                self.teams[name] = team.tenant
        for name, agent in catalog.agents.items():
            if self._first("agent", name, where("agents", name), problems):
                self.agents[name] = (agent.team, agent.tenant)
        for name, server in catalog.mcp_servers.items():
            if self._first("MCP server", name, where("mcp_servers", name), problems):
                self.mcp_servers[name] = ServerInfo(server.risk, server.owner)
        for name, tool in catalog.tools.items():
            at = where("tools", name)
            if not self._first("tool", name, at, problems):
                continue
            self.tools[name] = ToolInfo(tool.risk, tool.owner, tool.amount_argument)
            if tool.arguments:
                line = doc.line_of(("catalog", "tools", name))
                self.rules.append(CatalogTools(name, dict(tool.arguments),
                                               short_source(path, line)))
            for arg, constraint in tool.arguments.items():
                self._type(arg, constraint, where("tools", name, "arguments", arg), problems)

    def _type(self, arg: str, constraint: ArgumentConstraint, at: str,
              problems: list[str]) -> None:
        cedar = CEDAR_TYPES.get(constraint.type or "")
        if cedar is None or not _IDENT.match(arg):
            return  # untyped, structured or oddly named arguments stay out of Cedar
        known = self._types.setdefault(arg, (cedar, at))
        if known[0] != cedar:
            problems.append(
                f"{at}: argument {arg!r} is a {cedar} here but a {known[0]} at {known[1]}; "
                "Cedar gives one type per argument name: rename one of them")

    def snapshot(self) -> CatalogSnapshot:
        return CatalogSnapshot(
            tools=dict(self.tools), teams=dict(self.teams), agents=dict(self.agents),
            mcp_servers=dict(self.mcp_servers),
            argument_types={k: t for k, (t, _) in sorted(self._types.items())},
            argument_rules=tuple(self.rules),
        )


def base_schema() -> str:
    return resources.files("lictor.rules").joinpath("lictor.cedarschema").read_text("utf-8")


def cedar_schema(catalog: CatalogSnapshot) -> str:
    """lictor's Cedar schema with `Arguments` generated from the catalog's argument types."""
    fields = ", ".join(f"{name}?: {kind}" for name, kind in catalog.argument_types.items())
    return f"{base_schema()}\ntype Arguments = {{ {fields} }};\n"


def cedar_arguments(catalog: CatalogSnapshot, arguments: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments the schema declares, as Cedar values (numbers rounded up).

    A value of another type is left out: the catalog's argument rule blocks that call."""
    out: dict[str, Any] = {}
    for name, kind in catalog.argument_types.items():
        if name not in arguments:
            continue
        value = arguments[name]
        if (kind == "String" and isinstance(value, str)) or (
            kind == "Bool" and isinstance(value, bool)
        ):
            out[name] = value
        elif kind == "Long" and isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = cedar_long(value)
    return out


CEDAR_MAX = 2**63 - 1


def cedar_long(value: Any) -> int:
    """A number as a Cedar Long, rounded up (so "over 100" holds for 100.01); anything that
    is not a number reads as the largest Long, so a threshold cannot be dodged with text."""
    if isinstance(value, bool):
        return CEDAR_MAX
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return CEDAR_MAX
    if isinstance(value, int):
        return max(-CEDAR_MAX, min(CEDAR_MAX, value))
    if isinstance(value, float) and math.isfinite(value):
        return max(-CEDAR_MAX, min(CEDAR_MAX, math.ceil(value)))
    return CEDAR_MAX
