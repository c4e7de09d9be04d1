"""Start-up refuses a configuration that would make lictor an open or leaky boundary.

Each problem says what is unsafe and the one command or setting that fixes it; `serve`
prints them all and exits before it listens, so nothing runs half-protected.
"""

from __future__ import annotations

import stat
from pathlib import Path

from lictor.proxy.audit_commands import signing_key_path, subject_keys_path
from lictor.proxy.config import AgentConfig, Config, ConfigError

# Long enough that guessing is hopeless (a token_urlsafe(16) is 22 characters).
MIN_KEY_LENGTH = 20
KEYGEN = "python -c 'import secrets; print(\"sk-\" + secrets.token_urlsafe(32))'"


class UnsafeConfigError(ConfigError):
    """One or more reasons not to start, each with its fix."""


def _mode(path: Path) -> int | None:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return None


def secret_files(config: Config) -> list[Path]:
    """Files whose bytes let someone forge approvals, sign audit checkpoints or read sealed
    personal data: only lictor's own user may read them."""
    data = config.data_dir
    return [data / "approvals.key", signing_key_path(config), subject_keys_path(data)]


def _literal_keys(config: Config) -> list[tuple[str, AgentConfig]]:
    """Keys written in the config itself; a loopback-only demo key is public anyway."""
    return [(what, a) for what, agents in (("agent", config.agents),
                                           ("admin key", config.admin.keys))
            for a in agents if a.key is not None and not a.loopback_only]


def unsafe_config_problems(config: Config, config_path: Path | None) -> list[str]:
    """Every reason this config is unsafe to serve with; empty when it is fine."""
    problems: list[str] = []
    literal = _literal_keys(config)
    if config_path is not None:
        mode = _mode(config_path)
        if mode is not None and mode & 0o002:
            problems.append(f"{config_path} is writable by any user (mode {mode:04o}): anyone "
                            f"could change who may do what; run `chmod 600 {config_path}`")
        elif mode is not None and literal and mode & 0o044:
            problems.append(
                f"{config_path} holds agent or admin keys in the clear and other users may read "
                f"it (mode {mode:04o}); run `chmod 600 {config_path}`, or use `key_env` / "
                "`key_sha256` instead of `key`")
    if not config.listens_on_loopback:
        for what, agent in literal:
            if agent.key is not None and len(agent.key) < MIN_KEY_LENGTH:
                problems.append(
                    f"{what} {agent.id!r} has a {len(agent.key)}-character key and lictor "
                    f"listens on {config.server.host}: use at least {MIN_KEY_LENGTH} random "
                    f"characters, e.g. from `{KEYGEN}`")
    data_mode = _mode(config.data_dir)
    if data_mode is not None and data_mode & 0o002:
        problems.append(f"data dir {config.data_dir} is writable by any user (mode "
                        f"{data_mode:04o}): its audit log and keys could be replaced; run "
                        f"`chmod 700 {config.data_dir}`")
    for path in secret_files(config):
        mode = _mode(path)
        if mode is not None and mode & 0o077:
            problems.append(f"{path} is a secret key file that group or others may access "
                            f"(mode {mode:04o}); run `chmod 600 {path}`")
    return problems


def check_safe_to_serve(config: Config, config_path: Path | None) -> None:
    """Raise `UnsafeConfigError` listing every problem, or return when there is none."""
    problems = unsafe_config_problems(config, config_path)
    if problems:
        raise UnsafeConfigError("lictor will not start with an unsafe configuration:\n"
                                + "\n".join(f"  - {p}" for p in problems))
