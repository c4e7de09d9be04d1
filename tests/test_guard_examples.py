"""The direct-access examples run offline with the real OpenAI Agents SDK and LangGraph:
each runs as its own process, and what it printed and audited is checked."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, data_dir: Path) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Each `[step] outcome` line the example printed, and its audit records."""
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = subprocess.run([sys.executable, str(EXAMPLES / name), "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=120, env=env, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "audit verify: OK" in done.stdout
    steps = {}
    for line in done.stdout.splitlines():
        if line.startswith("["):
            title, _, outcome = line[1:].partition("] ")
            steps[title] = outcome
    with sqlite3.connect(data_dir / "audit.sqlite3") as db:
        rows = [json.loads(b) for (b,) in db.execute("SELECT body FROM records ORDER BY seq")]
    return steps, rows


def rules(rows: list[dict[str, Any]], kind: str) -> list[tuple[str, str, list[str]]]:
    return [(r["action"].get("tool", ""), r["verdict"], [f["rule"] for f in r["findings"]])
            for r in rows if r["kind"] == kind]


def test_openai_agents_example(tmp_path: Path) -> None:
    steps, rows = run_example("openai_agents_guard.py", tmp_path / "var")
    assert steps["allowed tool"] == "The tool said: Sunny and 21 C in Oslo."
    assert steps["forbidden tool"].startswith(
        "The tool said: [lictor] The tool call `shell` was not run: lictor blocked this tool "
        "call: rule cedar:no-shell-tools")
    assert steps["prompt injection"].startswith(
        "REFUSED lictor blocked this input: rule injection.instruction-override")
    assert "rule taint.high-impact-tools" in steps["email after it"]
    assert rules(rows, "tool_call") == [
        ("get_weather", "allow", []),
        ("shell", "block", ["cedar:no-shell-tools"]),
        ("fetch_page", "allow", []),
        ("send_email", "block", ["taint.high-impact-tools"]),
    ]
    assert rules(rows, "tool_result") == [
        ("get_weather", "allow", []), ("fetch_page", "flag", ["injection.ai-directed-content"])]
    requests = [r for r in rows if r["kind"] == "model_request"]
    assert [r["verdict"] for r in requests] == ["allow", "allow", "block", "allow", "mask"]
    assert {r["principal"]["agent"] for r in rows if "principal" in r} == {"demo-agent"}


def test_langgraph_example(tmp_path: Path) -> None:
    steps, rows = run_example("langgraph_guard.py", tmp_path / "var")
    # the model saw a placeholder; the agent got the real address back
    assert steps["personal data"] == "Please write to jane.doe@example.com today."
    assert "jane.doe@example.com" not in json.dumps(rows)
    assert rows[0]["content"][0]["text"] == "Please write to <EMAIL_1> today."
    assert steps["allowed tool"] == "The tool said: Sunny and 21 C in Oslo."
    assert steps["forbidden tool"].startswith(
        "REFUSED lictor blocked this model output: rule cedar:no-destructive-db-tools")
    assert steps["bad arguments"].startswith(
        "REFUSED lictor blocked this model output: rule catalog.refund_order.arguments")
    assert steps["prompt injection"].startswith(
        "REFUSED lictor blocked this input: rule injection.instruction-override")
    answers = [(r["verdict"], [f["rule"] for f in r["findings"]])
               for r in rows if r["kind"] == "model_response"]
    assert ("block", ["cedar:no-destructive-db-tools"]) in answers
    assert ("block", ["catalog.refund_order.arguments"]) in answers
    # get_weather was authorized with the model's answer: not counted or audited twice
    assert rules(rows, "tool_call") == []
    assert rules(rows, "tool_result") == [("get_weather", "allow", [])]
