"""The `litellm` backend: a real LiteLLM Router against loopback providers, via the SDK."""

from __future__ import annotations

import subprocess
import sys

import pytest
from mock_openai import MockOpenAI
from test_governance import EMAIL
from test_openai_sdk import client, collect


def router_config(primary: str, backup: str) -> dict[str, object]:
    return {
        "model_list": [
            {"model_name": "primary", "litellm_params": {
                "model": "openai/gpt-primary", "api_base": primary, "api_key": "sk-upstream-1"}},
            {"model_name": "backup", "litellm_params": {
                "model": "openai/gpt-backup", "api_base": backup, "api_key": "sk-upstream-2"}},
        ],
        "router_settings": {
            "fallbacks": [{"primary": ["backup"]}],
            "num_retries": 1,
            "retry_after": 0,
            "cooldown_time": 1,
        },
    }


@pytest.mark.parametrize("stream", [False, True])
def test_fallback_to_backup_with_masking(start_lictor, stream: bool) -> None:
    with MockOpenAI(fail_status=500) as broken, MockOpenAI() as healthy:
        server = start_lictor(
            models=[{"name": "smart", "backend": "litellm", "upstream_model": "primary"}],
            litellm=router_config(broken.base_url, healthy.base_url),
        )
        kwargs = {"model": "smart",
                  "messages": [{"role": "user", "content": f"Mail {EMAIL} please."}]}
        if stream:
            text, _, _ = collect(client(server).chat.completions.create(**kwargs, stream=True))
        else:
            text = client(server).chat.completions.create(**kwargs).choices[0].message.content
        assert text == f"Mail {EMAIL} please."
        assert len(broken.received) >= 1  # the primary was tried first
        assert healthy.received, "the router fell back to the backup"
        assert EMAIL not in healthy.last_text()
        assert "<EMAIL_1>" in healthy.last_text()
        assert healthy.received[-1].headers["Authorization"] == "Bearer sk-upstream-2"


def test_tool_calls_through_router(start_lictor) -> None:
    with MockOpenAI() as healthy:
        server = start_lictor(
            models=[{"name": "smart", "backend": "litellm", "upstream_model": "backup"}],
            litellm=router_config(healthy.base_url, healthy.base_url),
        )
        msg = client(server).chat.completions.create(
            model="smart",
            messages=[{"role": "user",
                       "content": 'CALL get_weather {"city": "Rome"}\nCALL shell {"cmd": "id"}'}],
        ).choices[0].message
        assert [c.function.name for c in msg.tool_calls or []] == ["get_weather"]
        assert "no-shell-tools" in (msg.content or "")


@pytest.mark.parametrize("stream", [False, True])
def test_router_sends_no_cookie_an_upstream_set(start_lictor, stream: bool) -> None:
    """One Router serves every agent: a cookie set in one answer must not ride along on
    later requests (by a host name: HTTP clients keep no cookies of IP addresses)."""
    with MockOpenAI(set_cookie="lb=agent-a; Path=/") as healthy:
        by_name = healthy.base_url.replace("127.0.0.1", "localhost")
        server = start_lictor(
            models=[{"name": "smart", "backend": "litellm", "upstream_model": "backup"}],
            litellm=router_config(by_name, by_name),
        )
        for _ in range(3):
            kwargs = {"model": "smart", "messages": [{"role": "user", "content": "hi"}]}
            if stream:
                collect(client(server).chat.completions.create(**kwargs, stream=True))
            else:
                client(server).chat.completions.create(**kwargs)
        assert len(healthy.received) == 3
        assert [r.headers.get("Cookie", "") for r in healthy.received] == ["", "", ""]


def test_litellm_not_imported_unless_used() -> None:
    """Start-up with the embedded defaults never imports litellm."""
    code = (
        "import sys\n"
        "from lictor.proxy.config import load_config\n"
        "from lictor.proxy.server import build_gateway\n"
        "import tempfile\n"
        "d = tempfile.mkdtemp()\n"
        "build_gateway(load_config(None, {'data_dir': d}))\n"
        "print('litellm' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip() == "False"
