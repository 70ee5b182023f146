"""The servesim app: this entry file only routes to the pages (one file each in views/).

The folder is not called pages/: Streamlit would read such a folder as an old-style multipage
app before this file runs, and answer a first visit to /traces with "page not found".

    servesim app            (or: make run; or: streamlit run app/main.py)
"""

import streamlit as st

from app.page_state import keep_page_settings

st.set_page_config(page_title="servesim", page_icon=":material/speed:", layout="wide")
keep_page_settings()  # Explore -> Compare -> Explore keeps every Explore setting

PAGES = [
    st.Page("views/explore.py", title="Explore", icon=":material/explore:", default=True),
    st.Page("views/compare.py", title="Compare", icon=":material/compare_arrows:"),
    st.Page("views/plan.py", title="Plan", icon=":material/calculate:"),
    st.Page("views/trace_explorer.py", title="Traces", icon=":material/timeline:", url_path="traces"),
    st.Page("views/calibration.py", title="Calibration", icon=":material/tune:"),
]

st.navigation(PAGES).run()
