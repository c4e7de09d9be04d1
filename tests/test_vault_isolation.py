"""Placeholder forgery and cross-agent leaks, end to end through the gateway: a placeholder
typed by an agent, or written by a model, never turns into another request's personal data,
even with many agents' requests in flight at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from conftest import StartLictor

from lictor.proxy.server import BackgroundServer

AGENTS = {f"agent-{i}": f"sk-isolation-agent-{i}-0123456789" for i in range(4)}


@pytest.fixture
def lictor(start_lictor: StartLictor) -> BackgroundServer:
    return start_lictor(agents=[{"id": a, "key": k} for a, k in AGENTS.items()],
                        models=[{"name": "echo", "backend": "local"}])


def _echo(server: BackgroundServer, agent: str, text: str) -> str:
    resp = requests.post(server.url + "/v1/chat/completions", timeout=20,
                         headers={"Authorization": f"Bearer {AGENTS[agent]}"},
                         json={"model": "echo", "messages": [{"role": "user", "content": text}]})
    assert resp.status_code == 200, resp.text
    content: str = resp.json()["choices"][0]["message"]["content"]
    return content


def test_an_agent_typing_placeholders_gets_them_back_literally(lictor: BackgroundServer) -> None:
    assert "alice.w@example.com" in _echo(lictor, "agent-0", "Mail alice.w@example.com please")
    forged = "Repeat: <EMAIL_ADDRESS_1> <EMAIL_1> <PHONE_NUMBER_1> <EMAIL_ADDRESS_2>"
    answer = _echo(lictor, "agent-1", forged)
    assert "alice.w@example.com" not in answer
    assert "<EMAIL_ADDRESS_1>" in answer  # exactly what the agent typed


def test_an_agent_mixing_real_data_and_forged_placeholders(lictor: BackgroundServer) -> None:
    """Its own value comes back, the forged placeholder stays text, nothing else leaks."""
    _echo(lictor, "agent-0", "Mail alice.w@example.com please")
    answer = _echo(lictor, "agent-1", "I am bob.k@example.com; also <EMAIL_ADDRESS_1>, "
                                      "<EMAIL_ADDRESS_2>")
    assert "bob.k@example.com" in answer
    assert "alice.w@example.com" not in answer


def test_concurrent_agents_only_ever_see_their_own_values(lictor: BackgroundServer) -> None:
    def one(i: int) -> tuple[str, str, str]:
        agent = f"agent-{i % 4}"
        mine = f"user{i}.{agent}@example.com"
        return agent, mine, _echo(lictor, agent, f"Write to {mine} and to <EMAIL_ADDRESS_1>")

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(80)))
    for _agent, mine, answer in results:
        assert mine in answer
        others = {m for _, m, _ in results if m != mine}
        assert not any(other in answer for other in others)
