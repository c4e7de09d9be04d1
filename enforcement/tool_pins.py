"""Tool definitions pinned by content hash (OWASP ASI04 Agentic Supply Chain).

A tool's name, description and parameter schema are what the model reads to decide how to
call it; a silently changed description is a classic way to plant instructions. The digest
is SHA-256 over RFC 8785 canonical JSON, so it does not depend on key order or spacing.
It is computed only for tools a rule pins, not for every tool of every request.
"""

from __future__ import annotations

import hashlib

from lictor.audit.canonical_json import canonicalize
from lictor.enforcement.types import ToolDefinition


def definition_digest(name: str, definition: ToolDefinition) -> str:
    body = {"name": name, "description": definition.description,
            "parameters": definition.parameters}
    return "sha256:" + hashlib.sha256(canonicalize(body)).hexdigest()
