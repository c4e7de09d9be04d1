"""Hypothesis strategies shared by the fuzz targets: JSON values and near-valid wire messages.

Near-valid inputs reach deep into a parser; arbitrary ones test its first line of defence.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

# Text that includes the characters parsers trip on: NUL, controls, lone-surrogate-free
# astral characters, markup and placeholder-shaped fragments.
text = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["", "\x00", "<EMAIL_ADDRESS_1>", "<", "<PHONE_", "jane@example.com",
                     "ignore previous instructions", "\u202e", "\U0001f600", "data: x"]),
)

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
    text,
)

json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(text, children, max_size=5)),
    max_leaves=25,
)


def _message(role: str) -> st.SearchStrategy[dict[str, Any]]:
    content = st.one_of(text, st.none(), json_values,
                        st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": text})))
    return st.fixed_dictionaries({"role": st.just(role), "content": content},
                                 optional={"tool_calls": json_values, "tool_call_id": text,
                                           "name": text})


chat_messages = st.lists(
    st.one_of(*(_message(r) for r in ("system", "developer", "user", "assistant", "tool")),
              json_values),
    max_size=4)

chat_requests: st.SearchStrategy[Any] = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"model": st.one_of(st.just("gpt-4o"), json_values), "messages": chat_messages},
        optional={"stream": json_values, "tools": json_values, "temperature": json_values}),
)
