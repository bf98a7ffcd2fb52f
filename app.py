"""The web process: the Streamlit UI and the HTTP API in one server (`streamlit run app.py`)."""

import logging

import streamlit as st

from api.routes import Api

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

app = st.App("Home.py", routes=Api().routes())
