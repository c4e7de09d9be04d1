"""The OpenAI Agents SDK, governed in-process: lictor's guard as the SDK's own guardrails.

An input guardrail (blocking: it runs before the first model call) refuses what the gateway
would refuse; an output guardrail checks the final answer; tool guardrails authorize every
function tool call before it runs (Cedar, argument schemas, code patterns, caps, taint,
approvals) and judge its result before the model reads it. A refused tool call or result
becomes a message the model reads, naming the rule. Imported only by agents that use it.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from agents import (
    Agent,
    FunctionTool,
    GuardrailFunctionOutput,
    InputGuardrail,
    OutputGuardrail,
    RunContextWrapper,
    ToolGuardrailFunctionOutput,
    ToolInputGuardrail,
    ToolInputGuardrailData,
    ToolOutputGuardrail,
    ToolOutputGuardrailData,
)
from agents.models.chatcmpl_converter import Converter

from lictor.adapters.in_process import Blocked, GuardApi


def _tripped(err: Blocked) -> GuardrailFunctionOutput:
    return GuardrailFunctionOutput(
        output_info={"message": err.message, "rules": err.rule_ids,
                     "request_id": err.request_id},
        tripwire_triggered=True)


def _passed(rules: list[str]) -> GuardrailFunctionOutput:
    return GuardrailFunctionOutput(output_info={"rules": rules}, tripwire_triggered=False)


def input_guardrail(guard: GuardApi) -> InputGuardrail[Any]:
    """Trips on input the gateway would refuse (injections, blocked personal data...)."""

    def lictor_input(ctx: RunContextWrapper[Any], agent: Agent[Any],
                     input: str | list[Any]) -> GuardrailFunctionOutput:
        messages = Converter.items_to_messages(input)
        try:
            checked = guard.check_input([dict(m) for m in messages])
        except Blocked as err:
            return _tripped(err)
        return _passed([f.rule_id for f in checked.decision.findings])

    return InputGuardrail(guardrail_function=lictor_input, name="lictor_input",
                          run_in_parallel=False)


def output_guardrail(guard: GuardApi) -> OutputGuardrail[Any]:
    """Trips on a final answer that fails a blocking rule (a secret, a code pattern...)."""

    def lictor_output(ctx: RunContextWrapper[Any], agent: Agent[Any],
                      output: Any) -> GuardrailFunctionOutput:
        text = output if isinstance(output, str) else _as_text(output)
        try:
            checked = guard.check_output(text)
        except Blocked as err:
            return _tripped(err)
        return _passed([f.rule_id for f in checked.decision.findings])

    return OutputGuardrail(guardrail_function=lictor_output, name="lictor_output")


def _as_text(value: Any) -> str:
    dump = getattr(value, "model_dump_json", None)
    return dump() if callable(dump) else json.dumps(value, default=str)


def tool_guardrails(guard: GuardApi) -> tuple[ToolInputGuardrail[Any], ToolOutputGuardrail[Any]]:
    """Authorize each call before it runs; judge each result before the model reads it."""

    def lictor_tool_call(data: ToolInputGuardrailData) -> ToolGuardrailFunctionOutput:
        ctx = data.context
        try:
            guard.authorize_tool(ctx.tool_name, ctx.tool_arguments or "{}", ctx.tool_call_id)
        except Blocked as err:
            return ToolGuardrailFunctionOutput.reject_content(
                err.tool_message(ctx.tool_name), output_info={"rules": err.rule_ids})
        return ToolGuardrailFunctionOutput.allow()

    def lictor_tool_result(data: ToolOutputGuardrailData) -> ToolGuardrailFunctionOutput:
        name = data.context.tool_name
        output = data.output if isinstance(data.output, str) else _as_text(data.output)
        try:
            guard.check_tool_result(name, output)
        except Blocked as err:
            return ToolGuardrailFunctionOutput.reject_content(
                err.tool_message(name), output_info={"rules": err.rule_ids})
        return ToolGuardrailFunctionOutput.allow()

    return (ToolInputGuardrail(guardrail_function=lictor_tool_call, name="lictor_tool_call"),
            ToolOutputGuardrail(guardrail_function=lictor_tool_result,
                                name="lictor_tool_result"))


def guard_agent(guard: GuardApi, agent: Agent[Any]) -> Agent[Any]:
    """A copy of `agent` with lictor's guardrails on its input, output and function tools
    (other tool kinds have no in-process hook: govern them through the gateway)."""
    call, result = tool_guardrails(guard)
    tools = [
        dataclasses.replace(
            t, tool_input_guardrails=[*(t.tool_input_guardrails or []), call],
            tool_output_guardrails=[*(t.tool_output_guardrails or []), result])
        if isinstance(t, FunctionTool) else t
        for t in agent.tools
    ]
    return agent.clone(
        input_guardrails=[*agent.input_guardrails, input_guardrail(guard)],
        output_guardrails=[*agent.output_guardrails, output_guardrail(guard)],
        tools=tools)
