"""The shared governance table (tests/governance_cases.py) on every plane: Chat Completions,
the Responses API and Anthropic Messages (whole and streamed, each through its own SDK),
embeddings (cases decided on user text alone), and the in-process guard. Every plane must
reach the table's verdicts with the table's rules, read from its audit records.

A plane is a driver that turns a case into its own request and returns the audit records
of that exchange; adding a way in is adding an entry to `PLANES`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest
from governance_cases import CASES, GovernanceCase, Outcome, outcomes
from test_guard import guard_config
from test_guard_governance import GATEWAY_MODEL, head, rows_since, through_guard
from test_openai_sdk import collect

from lictor.proxy.audit_commands import audit_path
from lictor.proxy.config import AgentConfig, Config
from lictor.proxy.guard import Guard
from lictor.proxy.server import BackgroundServer


@dataclass
class Env:
    server: BackgroundServer
    guard: Guard
    guard_config: Config


Driver = Callable[[Env, GovernanceCase, bool, str], None]


def key(plane: str) -> str:
    """Each plane is its own agent, so the examples pack's per-agent rate (60 a minute)
    counts one plane's requests only."""
    return f"sk-{plane}-agent-0123456789"


def _openai(env: Env, session: str) -> openai.OpenAI:
    plane = session.partition("-")[0]
    return openai.OpenAI(base_url=env.server.url + "/v1", api_key=key(plane),
                         max_retries=0, default_headers={"x-lictor-session": session})


def chat(env: Env, case: GovernanceCase, stream: bool, session: str) -> None:
    c = _openai(env, session)
    if stream:
        collect(c.chat.completions.create(model=GATEWAY_MODEL, messages=list(case.messages),
                                          stream=True))
    else:
        c.chat.completions.create(model=GATEWAY_MODEL, messages=list(case.messages))


def responses(env: Env, case: GovernanceCase, stream: bool, session: str) -> None:
    items: list[dict[str, Any]] = [
        {"type": "function_call_output", "call_id": m["tool_call_id"], "output": m["content"]}
        if m["role"] == "tool" else {"role": m["role"], "content": m["content"]}
        for m in case.messages]
    c = _openai(env, session)
    if stream:
        list(c.responses.create(model=GATEWAY_MODEL, input=items, stream=True))
    else:
        c.responses.create(model=GATEWAY_MODEL, input=items)


def messages(env: Env, case: GovernanceCase, stream: bool, session: str) -> None:
    system = "\n".join(m["content"] for m in case.messages if m["role"] == "system")
    turns: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": m["tool_call_id"],
                                      "content": m["content"]}]}
        if m["role"] == "tool" else {"role": m["role"], "content": m["content"]}
        for m in case.messages if m["role"] != "system"]
    c = anthropic.Anthropic(base_url=env.server.url, api_key=key("messages"), max_retries=0,
                            default_headers={"x-lictor-session": session})
    kwargs: dict[str, Any] = {"model": GATEWAY_MODEL, "max_tokens": 256, "messages": turns}
    if system:
        kwargs["system"] = system
    if stream:
        with c.messages.stream(**kwargs) as s:
            s.get_final_message()
    else:
        c.messages.create(**kwargs)


def embeddings(env: Env, case: GovernanceCase, stream: bool, session: str) -> None:
    _openai(env, session).embeddings.create(
        model=GATEWAY_MODEL, input=[m["content"] for m in case.messages])


def _embeddable(case: GovernanceCase) -> bool:
    """Only user text, and an answer the table does not judge beyond "allow"."""
    return (all(m["role"] == "user" for m in case.messages)
            and case.response in (None, Outcome("allow")))


PLANES: dict[str, tuple[Driver, tuple[bool, ...], Callable[[GovernanceCase], bool]]] = {
    "chat": (chat, (False, True), lambda case: True),
    "responses": (responses, (False, True), lambda case: True),
    "messages": (messages, (False, True), lambda case: True),
    "embeddings": (embeddings, (False,), _embeddable),
}


def _params() -> Iterator[Any]:
    for case in CASES:
        yield pytest.param("guard", False, case, id=f"guard-{case.name}")
        for plane, (_, streams, applies) in PLANES.items():
            for stream in streams:
                if applies(case):
                    yield pytest.param(plane, stream, case, id=f"{plane}-"
                                       f"{'stream' if stream else 'whole'}-{case.name}")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    config = guard_config(tmp_path_factory.mktemp("gateway"))
    agents = [AgentConfig(id=f"{plane}-agent", team="demo", tenant="local", key=key(plane))
              for plane in PLANES]
    config = config.model_copy(update={
        "server": config.server.model_copy(update={"port": 0}), "agents": agents})
    in_process = guard_config(tmp_path_factory.mktemp("guard"))
    with BackgroundServer(config) as server, Guard.open("demo-agent", in_process) as guard:
        yield Env(server, guard, in_process)


@pytest.mark.parametrize(("plane", "stream", "case"), list(_params()))
def test_same_verdicts_on_every_plane(env: Env, plane: str, stream: bool,
                                      case: GovernanceCase) -> None:
    if plane == "guard":
        path = audit_path(env.guard_config.data_dir)
        start = head(path)
        through_guard(env.guard, env.guard_config, case)
        assert outcomes(rows_since(path, start)) == (case.request, case.response)
        return
    path = env.server.gateway.audit.path
    start = head(path)
    try:
        PLANES[plane][0](env, case, stream, f"{plane}-{stream}-{case.name}")
    except (openai.APIError, anthropic.APIError) as err:
        assert "rule " in str(err) or "limit " in str(err), err  # a refusal names its rule
    expected = (case.request, case.response)
    if plane == "embeddings" and case.response is not None:
        expected = (case.request, Outcome("allow"))  # vectors: nothing to judge
    assert outcomes(rows_since(path, start)) == expected
