"""The servesim app: this entry file only routes to the pages (one file each in pages/).

    servesim app            (or: make run; or: streamlit run app/main.py)
"""

import streamlit as st

st.set_page_config(page_title="servesim", page_icon=":material/speed:", layout="wide")

PAGES = [
    st.Page("pages/explore.py", title="Explore", icon=":material/explore:", default=True),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    st.Page("pages/plan.py", title="Plan", icon=":material/calculate:"),
    st.Page("pages/trace_explorer.py", title="Traces", icon=":material/timeline:", url_path="traces"),
    st.Page("pages/calibration.py", title="Calibration", icon=":material/tune:"),
]

st.navigation(PAGES).run()
