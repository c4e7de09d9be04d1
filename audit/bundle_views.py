"""Views of a bundle's records for other tools: OCSF API Activity events and CSV rows.

A view is derived from ``records.jsonl`` alone and carries each record's hash, so
``verify-bundle`` re-renders it and compares bytes: a view can never say more, or other,
than the proven records.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from lictor.audit.canonical_json import canonicalize

__all__ = ["VIEW_FILES", "render_view"]

OCSF_VERSION = "1.3.0"
_ALLOWED = {"allow", "mask", "flag"}
_SEVERITY = {"block": (3, "Medium"), "approve": (2, "Low"), "flag": (2, "Low")}


def _principal(record: dict[str, Any]) -> dict[str, Any]:
    principal = record.get("principal")
    return principal if isinstance(principal, dict) else {}


def _who(record: dict[str, Any]) -> str:
    p = _principal(record)
    return str(p.get("agent") or p.get("admin") or "unknown")


def _rules(record: dict[str, Any]) -> list[str]:
    findings = record.get("findings")
    if not isinstance(findings, list):
        return []
    return [str(f.get("rule")) for f in findings if isinstance(f, dict) and f.get("rule")]


def _ocsf(record: dict[str, Any], record_hash: str) -> dict[str, Any]:
    """One OCSF 1.3 API Activity (class 6003) event; lictor's own fields go in ``unmapped``."""
    verdict = str(record.get("verdict", ""))
    severity_id, severity = _SEVERITY.get(verdict, (1, "Informational"))
    allowed = verdict in _ALLOWED
    found = record.get("action")
    action: dict[str, Any] = found if isinstance(found, dict) else {}
    when = datetime.fromisoformat(str(record.get("time", "1970-01-01T00:00:00Z")))
    principal = _principal(record)
    service = action.get("model") or action.get("server") or "lictor"
    user: dict[str, Any] = {"uid": _who(record)}
    if principal.get("team"):
        user["groups"] = [{"name": principal["team"]}]
    event: dict[str, Any] = {
        "activity_id": 99,
        "activity_name": str(record.get("kind", "other")),
        "category_uid": 6,
        "category_name": "Application Activity",
        "class_uid": 6003,
        "class_name": "API Activity",
        "type_uid": 600399,
        "type_name": "API Activity: Other",
        "time": int(when.timestamp() * 1000),
        "severity_id": severity_id,
        "severity": severity,
        "status_id": 1 if allowed else 2,
        "status": "Success" if allowed else "Failure",
        "action_id": 1 if allowed else 2,
        "action": "Allowed" if allowed else "Denied",
        "message": str(record.get("reason") or f"verdict {verdict}"),
        "actor": {"user": user},
        "api": {"operation": str(action.get("kind") or record.get("kind", "other")),
                "service": {"name": str(service)},
                "request": {"uid": str(record.get("request_id", ""))}},
        "src_endpoint": {"name": _who(record)},
        "metadata": {"version": OCSF_VERSION, "uid": record_hash,
                     "sequence": record.get("seq"), "original_time": record.get("time"),
                     "product": {"name": "lictor", "vendor_name": "lictor"}},
        "unmapped": {"record_hash": record_hash, "verdict": verdict, "rules": _rules(record),
                     "policy_hash": record.get("policy_hash")},
    }
    if principal.get("tenant"):
        event["metadata"]["tenant_uid"] = principal["tenant"]
    if action.get("model"):  # the AI Operation profile: which model the action invoked
        event["metadata"]["profiles"] = ["ai_operation"]
        event["ai_model"] = {"name": str(action["model"]),
                             "ai_provider": str(action.get("backend") or "unknown")}
    return event


def _render_ocsf(lines: Sequence[bytes]) -> bytes:
    return b"".join(
        canonicalize(_ocsf(json.loads(line), hashlib.sha256(line).hexdigest())) + b"\n"
        for line in lines)


CSV_COLUMNS = ("seq", "time", "kind", "agent", "team", "tenant", "verdict", "rules",
               "request_id", "record_hash")


def _render_csv(lines: Sequence[bytes]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for line in lines:
        record = json.loads(line)
        p = _principal(record)
        writer.writerow([record.get("seq"), record.get("time"), record.get("kind"),
                         _who(record), p.get("team", ""), p.get("tenant", ""),
                         record.get("verdict"), " ".join(_rules(record)),
                         record.get("request_id", ""), hashlib.sha256(line).hexdigest()])
    return out.getvalue().encode()


VIEW_FILES: dict[str, tuple[str, Callable[[Sequence[bytes]], bytes]]] = {
    "ocsf": ("records.ocsf.jsonl", _render_ocsf),
    "csv": ("records.csv", _render_csv),
}
"""format name -> (file in the bundle, renderer from the canonical record lines)."""


def render_view(fmt: str, lines: Sequence[bytes]) -> tuple[str, bytes]:
    """(file name, bytes) of the ``fmt`` view of canonical record ``lines`` (no newlines)."""
    name, render = VIEW_FILES[fmt]
    return name, render(lines)
