"""The broker images' recipes (installed as faasd_brokers: data only, see faasd/core/recipes.py)."""
