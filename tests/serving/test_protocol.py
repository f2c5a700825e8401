"""The wire format's pure parts: the nesting check agrees with the real depth of any JSON
value (strings full of brackets, quotes and escapes included), and sessions' store ids
cannot collide across owners."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from pilothouse.serving.access import OWNER, session_id
from pilothouse.serving.protocol import SESSION_NAME, json_too_deep

tricky_text = st.text(alphabet='[]{}"\\ab,:\u00e9', max_size=12)
values = st.recursive(
    st.none() | st.booleans() | st.integers() | tricky_text,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(tricky_text, children, max_size=3)
    ),
    max_leaves=40,
)


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


@given(values, st.integers(0, 8), st.booleans())
def test_the_nesting_check_measures_the_real_depth(
    value: Any, limit: int, ascii_only: bool
) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert json_too_deep(text, limit) == (depth(value) > limit)


@given(
    st.from_regex(OWNER, fullmatch=True),
    st.from_regex(SESSION_NAME, fullmatch=True),
    st.from_regex(OWNER, fullmatch=True),
    st.from_regex(SESSION_NAME, fullmatch=True),
)
def test_two_owners_sessions_never_share_a_store_id(a: str, x: str, b: str, y: str) -> None:
    if (a, x) != (b, y):
        assert session_id(a, x) != session_id(b, y)
    assert session_id(None, x) != session_id(a, y)
