"""Human approvals: requests bound to one exact action, votes by people, and waiting.

An approval is bound to (agent, tool, canonical arguments) by an HMAC under a key kept in
the data dir, so it cannot be reused for other arguments or another agent, and the store
never holds the arguments themselves (they may carry personal data). Approvals live in
SQLite and survive a restart; an approved one is used once and expires.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lictor.audit.canonical_json import canonicalize
from lictor.enforcement.types import ApprovalNeed, Principal

PENDING, APPROVED, DENIED, EXPIRED, USED = "pending", "approved", "denied", "expired", "used"

_SCHEMA = """CREATE TABLE IF NOT EXISTS approvals (
  id TEXT PRIMARY KEY, binding TEXT NOT NULL, status TEXT NOT NULL, body TEXT NOT NULL)"""


class ApprovalError(ValueError):
    """A vote that cannot count: unknown id, already decided, wrong team, second vote."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


@dataclass(slots=True)
class Vote:
    by: str  # the admin's id
    team: str
    approve: bool
    reason: str
    at: float


@dataclass(slots=True)
class Approval:
    """One request for people to approve one exact action."""

    id: str
    binding: str  # HMAC of agent, tool and canonical arguments
    agent: str
    tool: str
    summary: str  # what will happen, PII redacted
    rules: list[str]  # the rules and policies that asked for it
    needs: dict[str, int]  # team ("" = any admin) -> distinct approvers needed
    mode: str  # hold | pending
    status: str
    created: float
    expires: float  # pending: when the request lapses; approved: when the approval does
    votes: list[Vote] = field(default_factory=list)
    request_id: str = ""  # the request that asked for it
    used_by: str = ""  # the request that used it

    def as_record(self) -> dict[str, Any]:
        """What the admin API shows and audit keeps (no arguments, only the summary)."""
        out = asdict(self)
        out["needs"] = [{"team": t or "any", "approvers": n} for t, n in self.needs.items()]
        return out

    def missing(self) -> dict[str, int]:
        """Per team, how many more approving people are needed."""
        yes = [v for v in self.votes if v.approve]
        return {
            team: n - len({v.by for v in yes if not team or v.team == team})
            for team, n in self.needs.items()
            if n > len({v.by for v in yes if not team or v.team == team})
        }


def merge_needs(needs: Iterable[ApprovalNeed]) -> dict[str, int]:
    out: dict[str, int] = {}
    for need in needs:
        out[need.team] = max(out.get(need.team, 0), need.approvers)
    return out


class ApprovalDesk:
    """The approvals of one lictor: persisted in SQLite, kept in memory for lookups, with
    asyncio waiters for requests that hold until people decide."""

    def __init__(self, path: Path, pending_ttl_s: float, valid_for_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._key = _binding_key(path.parent / "approvals.key")
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        self._lock = threading.Lock()
        self.pending_ttl_s, self.valid_for_s, self._clock = pending_ttl_s, valid_for_s, clock
        self._by_id: dict[str, Approval] = {}
        # the row each pending or approved approval had when this process last read or
        # wrote it: updates are compare-and-set on it, as other processes (a CLI, a guard)
        # share the database
        self._stored: dict[str, str] = {}
        for (body,) in self._db.execute("SELECT body FROM approvals WHERE status IN (?, ?)",
                                        (PENDING, APPROVED)):
            self._remember(body)
        self._waiters: dict[str, list[asyncio.Future[Approval]]] = {}

    def close(self) -> None:
        self._db.close()

    def binding(self, principal: Principal, tool: str, arguments: Any) -> str:
        data = canonicalize({"agent": principal.agent_id, "tool": tool, "arguments": arguments})
        return hmac.new(self._key, data, hashlib.sha256).hexdigest()

    def _remember(self, body: str) -> Approval:
        """An approval as read from its row, kept as this process's current copy."""
        return self._keep(_from_json(body), body)

    def _keep(self, approval: Approval, body: str) -> Approval:
        """`approval`, whose row is `body`, as this process's current copy."""
        if approval.status in (PENDING, APPROVED):
            self._by_id[approval.id], self._stored[approval.id] = approval, body
        else:  # decided for good: nothing left to compare-and-set
            self._by_id.pop(approval.id, None)
            self._stored.pop(approval.id, None)
        return approval

    def _reload(self, approval_id: str) -> Approval | None:
        row = self._db.execute("SELECT body FROM approvals WHERE id = ?",
                               (approval_id,)).fetchone()
        return self._remember(row[0]) if row else None

    def _insert(self, approval: Approval) -> None:
        body = json.dumps(approval.as_record())
        with self._lock:
            self._db.execute("INSERT INTO approvals (id, binding, status, body) "
                             "VALUES (?, ?, ?, ?)",
                             (approval.id, approval.binding, approval.status, body))
        self._keep(approval, body)

    def _update(self, approval: Approval) -> tuple[bool, Approval | None]:
        """Write `approval` if its row is still what this process last saw (one atomic
        statement): (written, the row now). Not written: another process changed it first,
        and its row replaces this process's copy."""
        body = json.dumps(approval.as_record())
        with self._lock:
            changed = self._db.execute(
                "UPDATE approvals SET status = ?, body = ? WHERE id = ? AND body = ?",
                (approval.status, body, approval.id, self._stored.get(approval.id)),
            ).rowcount
        if changed != 1:
            return False, self._reload(approval.id)
        return True, self._keep(approval, body)

    def _expire(self, approval: Approval) -> Approval:
        if approval.status in (PENDING, APPROVED) and self._clock() >= approval.expires:
            approval.status = EXPIRED
            written, current = self._update(approval)
            if current is None:
                return approval
            if not written:  # decided or used elsewhere meanwhile: that row stands
                return self._expire(current)
            approval = current
            self._wake(approval)
        return approval

    def get(self, approval_id: str) -> Approval | None:
        found = self._by_id.get(approval_id)
        if found is not None:
            return self._expire(found)
        return self._reload(approval_id)

    def listing(self, status: str | None = None) -> list[Approval]:
        rows = [_from_json(b) for (b,) in self._db.execute(
            "SELECT body FROM approvals ORDER BY rowid")]
        current = [self._by_id.get(a.id) or a for a in rows]
        for approval in current:
            self._expire(approval)
        return [a for a in current if status is None or a.status == status]

    def find(self, binding: str, status: str) -> Approval | None:
        for approval in list(self._by_id.values()):
            if approval.binding == binding and self._expire(approval).status == status:
                return approval
        # another process on this data dir (a gateway's admin API, an in-process guard)
        # may have asked for it or decided it since
        row = self._db.execute("SELECT body FROM approvals WHERE binding = ? AND status = ? "
                               "ORDER BY rowid DESC LIMIT 1", (binding, status)).fetchone()
        if row is None:
            return None
        approval = self._expire(self._remember(row[0]))
        return approval if approval.status == status else None

    def take(self, binding: str, request_id: str) -> Approval | None:
        """Use an approved, unexpired approval of exactly this action (once, across every
        process on this data dir: the status changes only if nobody used it first)."""
        approval = self.find(binding, APPROVED)
        if approval is None:
            return None
        approval.status, approval.used_by = USED, request_id
        written, used = self._update(approval)
        return used if written else None

    def ask(self, binding: str, principal: Principal, needs: list[ApprovalNeed],
            request_id: str) -> tuple[Approval, bool]:
        """The pending approval of this action, made if there is none; (approval, new?)."""
        found = self.find(binding, PENDING)
        if found is not None:
            return found, False
        now = self._clock()
        approval = Approval(
            id="apr_" + secrets.token_hex(8), binding=binding, agent=principal.agent_id,
            tool=needs[0].tool, summary="; ".join(dict.fromkeys(n.summary for n in needs)),
            rules=list(dict.fromkeys(n.rule_id for n in needs)), needs=merge_needs(needs),
            mode="hold" if any(n.mode == "hold" for n in needs) else "pending",
            status=PENDING, created=now, expires=now + self.pending_ttl_s,
            request_id=request_id)
        self._insert(approval)
        return approval, True

    def vote(self, approval_id: str, admin: Principal, approve: bool, reason: str) -> Approval:
        """An approver's decision; a denial ends it, approvals count until enough."""
        fresh = self._reload(approval_id)  # other processes' votes count too
        approval = self._expire(fresh) if fresh is not None else None
        if approval is None:
            raise ApprovalError(404, "approval_not_found", f"no approval {approval_id!r}")
        if approval.status != PENDING:
            raise ApprovalError(409, "approval_decided",
                                f"approval {approval_id} is {approval.status}, not pending")
        if any(v.by == admin.agent_id for v in approval.votes):
            raise ApprovalError(409, "already_voted",
                                f"{admin.agent_id} has already decided on {approval_id}")
        missing = approval.missing()
        if approve and not any(not team or team == admin.team for team in missing):
            teams = ", ".join(t or "any" for t in missing)
            raise ApprovalError(403, "wrong_team", f"approval {approval_id} needs people "
                                f"from: {teams}; {admin.agent_id} is in "
                                f"{admin.team or 'no team'}")
        now = self._clock()
        approval.votes.append(Vote(admin.agent_id, admin.team, approve, reason, now))
        if not approve:
            approval.status = DENIED
        elif not approval.missing():
            approval.status, approval.expires = APPROVED, now + self.valid_for_s
        written, saved = self._update(approval)
        if not written or saved is None:
            raise ApprovalError(409, "approval_changed", f"approval {approval_id} changed "
                                "while this decision was made; look at it again")
        self._wake(saved)
        return saved

    async def wait(self, approval: Approval, timeout_s: float) -> Approval:
        """Until people decide or `timeout_s` passes; the approval as it then stands."""
        if approval.status != PENDING:
            return approval
        future: asyncio.Future[Approval] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(approval.id, []).append(future)
        try:
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            return self._expire(approval)
        finally:
            waiters = self._waiters.get(approval.id, [])
            if future in waiters:
                waiters.remove(future)

    def _wake(self, approval: Approval) -> None:
        if approval.status == PENDING:
            return
        for future in self._waiters.pop(approval.id, []):
            if not future.done():
                future.get_loop().call_soon_threadsafe(_settle, future, approval)


def _settle(future: asyncio.Future[Approval], approval: Approval) -> None:
    if not future.done():
        future.set_result(approval)


def _from_json(body: str) -> Approval:
    data = json.loads(body)
    data["needs"] = {("" if n["team"] == "any" else n["team"]): n["approvers"]
                     for n in data["needs"]}
    data["votes"] = [Vote(**v) for v in data["votes"]]
    return Approval(**data)


def _binding_key(path: Path) -> bytes:
    """The HMAC key for bindings: made on first start, readable by lictor only."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        key = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        return key
