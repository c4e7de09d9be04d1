"""Several processes on one data dir (a gateway, the approvals CLI, an in-process guard)
share the approvals database: an approval is used once in all of them together, and every
approver's vote counts wherever it was cast."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from lictor.enforcement.approvals import APPROVED, USED, ApprovalDesk, ApprovalError
from lictor.enforcement.types import ApprovalNeed, Principal

AGENT = Principal("refund-bot", "support")
NEED = ApprovalNeed("call_1", "wire_transfer", "two-approvers", "wire 20,000 EUR", "finance",
                    2, "pending", 30)


def desk(path: Path) -> ApprovalDesk:
    return ApprovalDesk(path / "approvals.sqlite3", 3600, 3600)


def test_an_approval_seen_approved_by_two_processes_is_used_once(tmp_path: Path) -> None:
    gateway, guard = desk(tmp_path), desk(tmp_path)
    binding = gateway.binding(AGENT, "wire_transfer", {"amount": 20000})
    approval, _ = gateway.ask(binding, AGENT, [NEED], "req-1")
    gateway.vote(approval.id, Principal("alice", "finance"), True, "invoice checked")
    gateway.vote(approval.id, Principal("bob", "finance"), True, "called the customer")
    assert guard.find(binding, APPROVED) is not None  # both now hold it as approved
    assert gateway.find(binding, APPROVED) is not None
    used = guard.take(binding, "req-guard")
    assert used is not None and used.status == USED
    assert gateway.take(binding, "req-gateway") is None  # its copy was stale: refused
    final = gateway.get(approval.id)
    assert final is not None and final.used_by == "req-guard"


def test_votes_cast_in_two_processes_both_count(tmp_path: Path) -> None:
    gateway, cli = desk(tmp_path), desk(tmp_path)
    binding = gateway.binding(AGENT, "wire_transfer", {"amount": 20000})
    approval, _ = gateway.ask(binding, AGENT, [NEED], "req-1")
    cli.vote(approval.id, Principal("alice", "finance"), True, "invoice checked")
    decided = gateway.vote(approval.id, Principal("bob", "finance"), True, "called back")
    assert decided.status == APPROVED  # bob's vote did not overwrite alice's
    assert [v.by for v in decided.votes] == ["alice", "bob"]
    with pytest.raises(ApprovalError) as again:
        cli.vote(approval.id, Principal("carol", "finance"), True, "late")
    assert again.value.code == "approval_decided"


def _race(path: str, binding: str, start: multiprocessing.synchronize.Event,
          out: multiprocessing.Queue[bool]) -> None:
    own = desk(Path(path))
    own.find(binding, APPROVED)
    start.wait()
    out.put(own.take(binding, f"req-{multiprocessing.current_process().pid}") is not None)


def test_processes_racing_for_one_approval_get_it_once(tmp_path: Path) -> None:
    """Eight processes, each holding the approval as approved, take it at the same moment."""
    setup = desk(tmp_path)
    binding = setup.binding(AGENT, "wire_transfer", {"amount": 20000})
    approval, _ = setup.ask(binding, AGENT, [NEED], "req-1")
    for name in ("alice", "bob"):
        setup.vote(approval.id, Principal(name, "finance"), True, "ok")
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    racers = [ctx.Process(target=_race, args=(str(tmp_path), binding, start, out))
              for _ in range(8)]
    for racer in racers:
        racer.start()
    start.set()
    results = [out.get(timeout=60) for _ in racers]
    for racer in racers:
        racer.join(timeout=60)
    assert sorted(results) == [False] * 7 + [True]
