"""The shared governance table (tests/governance_cases.py) through the gateway, with the
real openai SDK, and through the in-process guard: the same verdicts with the same rules,
and the same audit records."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from governance_cases import CASES, GovernanceCase, Outcome, outcomes
from test_guard import guard_config
from test_openai_sdk import client

from lictor.adapters.backends.local_model import answer
from lictor.adapters.in_process import Blocked
from lictor.proxy.audit_commands import audit_path
from lictor.proxy.config import Config
from lictor.proxy.guard import Guard
from lictor.proxy.server import BackgroundServer

GATEWAY_MODEL = "lictor-local"
APPROVAL_ID = re.compile(r"apr_[0-9a-f]+")


def rows_since(path: Path, seq: int) -> list[dict[str, Any]]:
    with sqlite3.connect(path) as db:
        return [json.loads(b) for (b,) in
                db.execute("SELECT body FROM records WHERE seq > ? ORDER BY seq", (seq,))]


def head(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COALESCE(MAX(seq), 0) FROM records").fetchone()[0])


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundServer]:
    config = guard_config(tmp_path_factory.mktemp("gateway"))
    config = config.model_copy(update={"server": config.server.model_copy(update={"port": 0})})
    with BackgroundServer(config) as server:
        yield server


@pytest.fixture(scope="module")
def guard_and_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Guard, Config]]:
    config = guard_config(tmp_path_factory.mktemp("guard"))
    with Guard.open("demo-agent", config) as guard:
        yield guard, config


def through_gateway(server: BackgroundServer, case: GovernanceCase) -> list[dict[str, Any]]:
    path = server.gateway.audit.path
    start = head(path)
    try:
        client(server).chat.completions.create(
            model=GATEWAY_MODEL, messages=list(case.messages),  # type: ignore[arg-type]
            extra_headers={"x-lictor-session": case.name})
    except openai.APIStatusError as err:
        assert err.status_code == 403, err
    return rows_since(path, start)


def through_guard(guard: Guard, config: Config, case: GovernanceCase) -> list[dict[str, Any]]:
    path = audit_path(config.data_dir)
    start = head(path)
    session = guard.for_session(case.name)
    try:
        checked = session.check_input(list(case.messages), model=GATEWAY_MODEL)
        text, calls = answer(checked.messages)  # the same offline model, in-process
        session.check_output(text, calls, checked)
    except Blocked:
        pass
    return rows_since(path, start)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_same_verdicts_through_gateway_and_guard(
        case: GovernanceCase, gateway: BackgroundServer,
        guard_and_config: tuple[Guard, Config]) -> None:
    expected: tuple[Outcome, Outcome | None] = (case.request, case.response)
    by_gateway = through_gateway(gateway, case)
    by_guard = through_guard(*guard_and_config, case)
    assert outcomes(by_gateway) == expected
    assert outcomes(by_guard) == expected
    # the same records (the gateway writes a request with its answer, the guard at once)
    assert shape(by_gateway) == shape(by_guard)


def shape(rows: list[dict[str, Any]]) -> list[str]:
    """Kinds, verdicts, findings and content, without ids, times and the backend's name."""
    return sorted(APPROVAL_ID.sub("apr_*", json.dumps(
        [r["kind"], r["verdict"], r.get("findings"), r.get("content")])) for r in rows)
