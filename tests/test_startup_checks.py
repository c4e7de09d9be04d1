"""Start-up refuses unsafe configurations with a message naming the file and the fix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lictor.proxy.cli import main
from lictor.proxy.config import load_config
from lictor.proxy.startup_checks import unsafe_config_problems

STRONG = "sk-" + "x" * 40


def _config(tmp_path: Path, text: str, mode: int) -> Path:
    path = tmp_path / "lictor.yaml"
    path.write_text(f"data_dir: {tmp_path / 'var'}\n" + text)
    os.chmod(path, mode)
    return path


def _problems(path: Path) -> list[str]:
    return unsafe_config_problems(load_config(path), path)


def test_a_private_config_with_strong_keys_is_fine(tmp_path: Path) -> None:
    path = _config(tmp_path, "server: {host: 0.0.0.0}\n"
                   f"agents: [{{id: a, key: {STRONG}}}]\n", 0o600)
    assert _problems(path) == []


def test_a_readable_config_with_keys_in_the_clear_is_refused(tmp_path: Path) -> None:
    path = _config(tmp_path, f"agents: [{{id: a, key: {STRONG}}}]\n", 0o644)
    [problem] = _problems(path)
    assert str(path) in problem and "chmod 600" in problem and "key_env" in problem


def test_a_readable_config_without_keys_in_the_clear_is_fine(tmp_path: Path) -> None:
    path = _config(tmp_path, "agents: [{id: a, key_env: LICTOR_TEST_KEY}]\n", 0o644)
    assert _problems(path) == []


def test_a_world_writable_config_is_refused(tmp_path: Path) -> None:
    path = _config(tmp_path, "", 0o666)
    [problem] = _problems(path)
    assert "writable by any user" in problem


def test_a_weak_key_on_a_reachable_address_is_refused(tmp_path: Path) -> None:
    path = _config(tmp_path, "server: {host: 0.0.0.0}\nagents: [{id: a, key: short}]\n"
                   "admin: {keys: [{id: ops, key: also-short}]}\n", 0o600)
    problems = _problems(path)
    assert len(problems) == 2
    assert "agent 'a' has a 5-character key" in problems[0]
    assert "admin key 'ops'" in problems[1] and "secrets.token_urlsafe" in problems[1]


def test_a_weak_key_on_loopback_is_allowed(tmp_path: Path) -> None:
    path = _config(tmp_path, "agents: [{id: a, key: short}]\n", 0o600)
    assert _problems(path) == []


def test_key_files_others_can_read_are_refused(tmp_path: Path) -> None:
    path = _config(tmp_path, "", 0o600)
    data = tmp_path / "var"
    (data / "keys").mkdir(parents=True)
    for name in ("approvals.key", "keys/audit-signing.pem"):
        (data / name).write_bytes(b"secret")
        os.chmod(data / name, 0o640)
    problems = _problems(path)
    assert len(problems) == 2
    assert all("chmod 600" in p for p in problems)


def test_a_world_writable_data_dir_is_refused(tmp_path: Path) -> None:
    path = _config(tmp_path, "", 0o600)
    (tmp_path / "var").mkdir()
    os.chmod(tmp_path / "var", 0o777)
    [problem] = _problems(path)
    assert "chmod 700" in problem


def test_serve_refuses_before_listening(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _config(tmp_path, f"agents: [{{id: a, key: {STRONG}}}]\n", 0o644)
    assert main(["serve", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "will not start with an unsafe configuration" in err and str(path) in err
    assert not (tmp_path / "var" / "audit.sqlite3").exists()
