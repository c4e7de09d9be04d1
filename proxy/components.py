"""What every data plane opens from a config: the engine, the audit store and its signer,
the approval desk, kept originals; shared by the gateway and the in-process guard.

Free of aiohttp, so the in-process guard imports no server code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lictor.audit import AuditStore
from lictor.audit.checkpoints import Checkpointer
from lictor.enforcement.approvals import ApprovalDesk
from lictor.enforcement.engine import Engine
from lictor.enforcement.limits import kill_key
from lictor.enforcement.session_state import MemoryStateStore
from lictor.enforcement.types import Principal
from lictor.proxy.audit_commands import audit_path, make_checkpointer, subject_keys_path
from lictor.proxy.config import Config
from lictor.rules.loader import bundled_pack, load_policy
from lictor.rules.schema import duration_seconds

if TYPE_CHECKING:  # cryptography is imported only when originals are kept
    from lictor.audit.subject_keys import SubjectKeys


def rule_paths(config: Config) -> list[Path]:
    return [bundled_pack(name) for name in config.rules.packs] + list(config.rules.paths)


@dataclass(slots=True)
class Components:
    engine: Engine
    audit: AuditStore
    checkpointer: Checkpointer
    approvals: ApprovalDesk
    subject_keys: SubjectKeys | None

    def close(self) -> None:
        self.audit.close()
        self.approvals.close()
        if self.subject_keys is not None:
            self.subject_keys.close()


def open_components(config: Config, principals: list[Principal],
                    disabled: list[str]) -> Components:
    """Everything compiled and opened up front: a bad rule file fails here. `disabled`:
    agents whose kill switch is on from the start."""
    policy = load_policy(rule_paths(config))
    state = MemoryStateStore()
    for agent_id in disabled:
        state.set_switch(kill_key(agent_id), True)
    engine = Engine(policy, principals, state)
    store = AuditStore.open(audit_path(config.data_dir), synchronous=config.audit.synchronous)
    try:
        checkpointer = make_checkpointer(config, store)
    except Exception:
        store.close()
        raise
    desk = ApprovalDesk(config.data_dir / "approvals.sqlite3",
                        duration_seconds(config.approvals.pending_ttl),
                        duration_seconds(config.approvals.valid_for))
    subject_keys = None
    if config.audit.keep_originals:
        from lictor.audit.subject_keys import SubjectKeys

        subject_keys = SubjectKeys(subject_keys_path(config.data_dir))
    return Components(engine, store, checkpointer, desk, subject_keys)
