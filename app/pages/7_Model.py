"""Model: the model a finalized task paid for (the body is app/model_page.py)."""

from app.model_page import render

render()
