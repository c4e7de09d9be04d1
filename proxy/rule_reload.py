"""Hot reload of rule files: edit a rule, and the next request is judged by it.

A watcher polls the rule files' sizes and mtimes, and reloads once they hold still for
one interval (SIGHUP and the admin API ask at once); the new policy is loaded and
compiled off the event loop, then swapped in with one assignment, so requests in flight
finish and none is dropped. A broken edit is rejected:
the last good policy stays, and the error (file and line) is logged and audited.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from lictor.enforcement.engine import Engine
from lictor.enforcement.types import Principal
from lictor.proxy.gateway import Gateway
from lictor.rules.loader import RuleLoadError, load_policy, rule_files

log = logging.getLogger("lictor.reload")

Fingerprint = tuple[tuple[str, int, int], ...]


def fingerprint(paths: list[Path]) -> Fingerprint:
    """Each rule file's path, size and mtime: cheap to take, changes with any edit."""
    try:
        files = rule_files(paths)
    except RuleLoadError:
        return ()
    out = []
    for path in files:
        try:
            st = path.stat()
        except OSError:
            continue
        out.append((str(path), st.st_size, st.st_mtime_ns))
    return tuple(out)


class RuleReloader:
    def __init__(self, gateway: Gateway, paths: list[Path], principals: list[Principal],
                 interval_s: float) -> None:
        self.gateway = gateway
        self.paths = paths
        self.principals = principals
        self.interval_s = interval_s
        self._seen = fingerprint(paths)
        self._lock = asyncio.Lock()

    async def watch(self) -> None:
        """Poll for edits until cancelled."""
        while True:
            await asyncio.sleep(self.interval_s)
            seen = await asyncio.to_thread(fingerprint, self.paths)
            if seen == self._seen:
                continue
            while True:  # settle: an editor may still be writing (a half-written file)
                await asyncio.sleep(self.interval_s)
                again = await asyncio.to_thread(fingerprint, self.paths)
                if again == seen:
                    break
                seen = again
            if seen != self._seen:
                self._seen = seen
                try:
                    await self.reload("a rule file changed")
                except Exception:  # the audit store refused: keep watching, try next edit
                    log.exception("rule reload failed")

    async def reload(self, why: str) -> dict[str, Any]:
        """Load the rule files again; swap the policy in if it loads, else keep the old."""
        async with self._lock:
            old = self.gateway.engine
            try:
                engine = await asyncio.to_thread(self._build, old)
            except RuleLoadError as exc:
                log.error("rule reload rejected (%s); policy %s stays:\n%s", why,
                          old.policy.version, exc)
                return self._audit(why, "rejected", old.policy.content_hash, exc.problems)
            if engine is None:
                return self._audit(why, "unchanged", old.policy.content_hash, [])
            self.gateway.engine = engine
            log.info("rules reloaded (%s): policy %s -> %s", why, old.policy.version,
                     engine.policy.version)
            return self._audit(why, "loaded", engine.policy.content_hash, [],
                               previous=old.policy.content_hash)

    def _build(self, old: Engine) -> Engine | None:
        policy = load_policy(self.paths)
        if policy.content_hash == old.policy.content_hash:
            return None
        return Engine(policy, self.principals, old.limits.state)  # counters carry over

    def _audit(self, why: str, status: str, policy_hash: str, problems: list[str],
               previous: str = "") -> dict[str, Any]:
        entry: dict[str, Any] = {
            "kind": "policy_reload", "reason": why, "status": status,
            "verdict": "block" if status == "rejected" else "allow", "findings": [],
            "policy_hash": policy_hash,
        }
        if problems:
            entry["problems"] = problems
        if previous:
            entry["previous_policy_hash"] = previous
        if status != "unchanged":
            self.gateway.append_records(entry)
        return entry
