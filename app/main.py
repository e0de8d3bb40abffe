"""The app's entry (`streamlit run app/main.py`, as `bountytree up` starts it): every page,
listed in one place, and the sidebar every page shares (who am I, chain, store)."""

import streamlit as st

from app import ui
from app.model_page import render as model_page

st.set_page_config(page_title="bountytree", page_icon="🌳", layout="wide")

pages = [
    st.Page("pages/0_Home.py", title="Tasks", url_path="Home", default=True),
    st.Page("pages/1_Post_a_bounty.py", title="Post a bounty", url_path="Post_a_bounty"),
    st.Page("pages/2_Task.py", title="Task", url_path="Task"),
    st.Page(model_page, title="Model", url_path="Model"),
    st.Page("pages/3_Propose.py", title="Propose", url_path="Propose"),
    st.Page("pages/4_Train.py", title="Train", url_path="Train"),
    st.Page("pages/5_Oracle.py", title="Oracle", url_path="Oracle"),
    st.Page("pages/6_Wallet.py", title="Wallet", url_path="Wallet"),
]
chosen = st.navigation(pages)
ui.sidebar()  # here, not in the pages: "Who am I" and the wallet then stay from page to page
chosen.run()
