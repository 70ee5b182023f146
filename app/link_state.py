"""What pages share about settings carried in their address: reading a value a link gives as
text, and showing which values a link gave that were left out."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import streamlit as st


def parse_number(text: str, whole: bool = False) -> tuple[Any, str | None]:
    """(the number, None), or (None, what is wrong with ``text`` as one)."""
    try:
        number = float(text)
    except ValueError:
        return None, "not a number"
    if number != number or number in (float("inf"), float("-inf")):
        return None, "not a finite number"
    if whole:
        return (int(number), None) if number.is_integer() else (None, "not a whole number")
    return number, None


def quoted(name: str, problem: str, text: object) -> str:
    """One problem of a link's value, quoting it briefly: "seeds: ... (got '40')"."""
    return f"{name}: {problem} (got {str(text)[:40]!r})"


def read_link_once(page: str,
                   read: Callable[[Mapping[str, str]], tuple[dict[str, Any], list[str]]]) -> None:
    """On a session's first run of ``page``, put the settings its address carries into the
    session (``read`` turns the query into session values and problems); on every run, name
    the values that were left out."""
    key = f"{page}_link_problems"
    if key not in st.session_state:
        values, problems = read(st.query_params)
        st.session_state.update(values)
        st.session_state[key] = problems
    if st.session_state[key]:
        st.warning("Some settings in this page's address were not used: "
                   + "; ".join(st.session_state[key]) + ".", icon=":material/link_off:")
