"""Shared fixtures: a loopback mock provider and lictor itself, both real HTTP servers."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from mock_anthropic import MockAnthropic
from mock_openai import MockOpenAI

from lictor.proxy.config import load_config
from lictor.proxy.server import BackgroundServer

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

DEMO_KEY = "sk-lictor-demo"

# Fuzz targets (tests/test_fuzz_*.py): a short bounded run in CI, a long one with
# `scripts/fuzz` (HYPOTHESIS_PROFILE=long). No example database: runs stay reproducible
# from the seed hypothesis prints on failure, and nothing is written into the repo.
settings.register_profile("ci", max_examples=150, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=int(os.environ.get("FUZZ_EXAMPLES", "20000")),
                          deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def claude() -> Iterator[MockAnthropic]:
    """A loopback provider speaking Anthropic's Messages API."""
    with MockAnthropic() as mock:
        yield mock


@pytest.fixture
def upstream() -> Iterator[MockOpenAI]:
    with MockOpenAI() as mock:
        yield mock


StartLictor = Callable[..., BackgroundServer]


@pytest.fixture
def start_lictor(tmp_path: Path) -> Iterator[StartLictor]:
    """Start lictor on a free loopback port with its data under tmp_path.

    Keyword arguments override top-level config sections (e.g. models=[...]).
    """
    servers: list[BackgroundServer] = []

    def start(**overrides: Any) -> BackgroundServer:
        base: dict[str, Any] = {"server": {"host": "127.0.0.1", "port": 0},
                                "data_dir": str(tmp_path / "var")}
        base.update(overrides)
        server = BackgroundServer(load_config(None, base)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def lictor(start_lictor: StartLictor, upstream: MockOpenAI) -> BackgroundServer:
    """lictor with two routes: the built-in local model and passthrough to the mock."""
    return start_lictor(
        models=[
            {"name": "lictor-local", "backend": "local"},
            {"name": "mock-gpt", "backend": "passthrough", "base_url": upstream.base_url,
             "upstream_model": "gpt-upstream"},
        ]
    )


def audit_rows(server: BackgroundServer) -> list[dict[str, Any]]:
    """Every audit record of a running server, decoded, in order."""
    import json

    path = server.gateway.audit.path
    with sqlite3.connect(path) as db:
        return [json.loads(body) for (body,) in db.execute("SELECT body FROM records ORDER BY seq")]
