"""LangGraph, governed in-process: a model wrapper that masks what the model is sent and
restores what it answers (like the gateway), a node that only checks the conversation, and
a `ToolNode` wrapper that authorizes each tool call and judges its result.

A refused tool call or result becomes an error `ToolMessage` naming the rule, which the
model reads; refused input raises `Blocked` out of the graph. Imported only by agents that
use it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ToolMessage,
    convert_to_messages,
    convert_to_openai_messages,
)
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_core.tools import BaseTool
from langgraph.prebuilt import ToolNode
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.types import Command

from lictor.adapters.in_process import Blocked, CheckedInput, GuardApi

ToolOutcome = ToolMessage | Command[Any]


def check_messages(guard: GuardApi, messages: Sequence[BaseMessage]) -> CheckedInput:
    """The conversation in OpenAI chat form, checked (raises `Blocked`)."""
    converted = convert_to_openai_messages(list(messages))
    return guard.check_input(converted if isinstance(converted, list) else [converted])


def guard_node(guard: GuardApi, key: str = "messages") -> Callable[[dict[str, Any]], dict[str,
                                                                                         Any]]:
    """A graph node (put it before the model node): raises `Blocked` on refused input."""

    def lictor_guard(state: dict[str, Any]) -> dict[str, Any]:
        check_messages(guard, state[key])
        return {}

    return lictor_guard


def guarded_model(guard: GuardApi, model: Runnable[Any, Any]) -> Runnable[Any, AIMessage]:
    """`model` (a chat model, or any runnable from messages to an AI message) behind lictor:
    personal data masked before it is sent, placeholders restored in its answer, proposed
    calls a policy forbids dropped with a note. Refusals raise `Blocked`."""

    def call(messages: Sequence[BaseMessage]) -> AIMessage:
        checked = check_messages(guard, messages)
        reply = model.invoke(convert_to_messages(checked.messages))
        text = reply.content if isinstance(reply.content, str) else ""
        calls = [{"id": c["id"], "type": "function", "function": {
            "name": c["name"], "arguments": json.dumps(c["args"])}}
            for c in getattr(reply, "tool_calls", None) or []]
        out = guard.check_output(text, calls, checked)
        restored = convert_to_messages([{"role": "assistant", "content": out.text or "",
                                         "tool_calls": out.tool_calls}])[0]
        assert isinstance(restored, AIMessage)
        return restored

    return RunnableLambda(call, name="lictor_guarded_model")


def _refused(request: ToolCallRequest, err: Blocked) -> ToolMessage:
    call = request.tool_call
    return ToolMessage(content=err.tool_message(call["name"]), tool_call_id=call["id"] or "",
                       name=call["name"], status="error")


def _text(message: ToolMessage) -> str:
    content = message.content
    return content if isinstance(content, str) else json.dumps(content, default=str)


def wrap_tool_call(guard: GuardApi) -> Callable[
        [ToolCallRequest, Callable[[ToolCallRequest], ToolOutcome]], ToolOutcome]:
    """`ToolNode(wrap_tool_call=...)`: authorize, run, judge the result."""

    def lictor_tool(request: ToolCallRequest,
                    execute: Callable[[ToolCallRequest], ToolOutcome]) -> ToolOutcome:
        call = request.tool_call
        try:
            guard.authorize_tool(call["name"], call["args"], call["id"] or "")
        except Blocked as err:
            return _refused(request, err)
        return _judge(guard, request, execute(request))

    return lictor_tool


def awrap_tool_call(guard: GuardApi) -> Callable[
        [ToolCallRequest, Callable[[ToolCallRequest], Awaitable[ToolOutcome]]],
        Awaitable[ToolOutcome]]:
    """The async twin of `wrap_tool_call` (`ainvoke`, `astream`)."""

    async def lictor_tool(request: ToolCallRequest, execute: Callable[
            [ToolCallRequest], Awaitable[ToolOutcome]]) -> ToolOutcome:
        call = request.tool_call
        try:
            guard.authorize_tool(call["name"], call["args"], call["id"] or "")
        except Blocked as err:
            return _refused(request, err)
        return _judge(guard, request, await execute(request))

    return lictor_tool


def _judge(guard: GuardApi, request: ToolCallRequest, outcome: ToolOutcome) -> ToolOutcome:
    if not isinstance(outcome, ToolMessage):
        return outcome  # a Command updates graph state: nothing for a model to read
    try:
        guard.check_tool_result(request.tool_call["name"], _text(outcome))
    except Blocked as err:
        return _refused(request, err)
    return outcome


def guarded_tool_node(guard: GuardApi, tools: Sequence[BaseTool | Callable[..., Any]],
                      **kwargs: Any) -> ToolNode:
    """A `ToolNode` whose every call lictor authorizes and whose every result it judges."""
    return ToolNode(list(tools), wrap_tool_call=wrap_tool_call(guard),
                    awrap_tool_call=awrap_tool_call(guard), **kwargs)
