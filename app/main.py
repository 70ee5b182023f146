"""The servesim app: this entry file only routes to the pages (one file each in pages/).

    servesim app            (or: make run; or: streamlit run app/main.py)
"""

import streamlit as st

st.set_page_config(page_title="servesim", page_icon="📈", layout="wide")

PAGES = [
    st.Page("pages/explore.py", title="Explore", icon="🔭", default=True),
    st.Page("pages/compare.py", title="Compare", icon="⚖️"),
    st.Page("pages/plan.py", title="Plan", icon="🧮"),
    st.Page("pages/traces.py", title="Traces", icon="📜"),
    st.Page("pages/calibration.py", title="Calibration", icon="🎯"),
]

st.navigation(PAGES).run()
