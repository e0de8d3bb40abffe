"""Delivery of the winning model: export to a model folder (`export`), its model card
(`model_card`) and the inference server (`serving`). Above the market; below the commands."""
