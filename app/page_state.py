"""Page settings that survive a visit to another page.

Streamlit forgets a widget's value when a run does not draw the widget, so going from Explore to
Compare and back would reset every Explore setting. Before each run (whatever the page), every
page setting is written back into the session's state as a plain value, which Streamlit keeps,
and the page's widgets pick it up again when they are drawn.
"""

from __future__ import annotations

import streamlit as st

PAGE_PREFIXES = ("explore_", "compare_", "plan_", "traces_", "calibration_")
# widgets whose value cannot be set through the session's state (Streamlit refuses it)
NOT_SETTABLE = ("upload", "button", "download", "report_html", "report_zip", "plan_run")


def keep_page_settings() -> None:
    for key in list(st.session_state.keys()):
        if key.startswith(PAGE_PREFIXES) and not any(part in key for part in NOT_SETTABLE):
            st.session_state[key] = st.session_state[key]
