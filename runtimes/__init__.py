"""The runtime images' recipes (installed as faasd_runtimes: data only, see faasd/core/recipes.py)."""
