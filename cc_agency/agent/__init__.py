"""Container-side agent: `ccagent.py` is copied into each batch container and run there (see its docstring)."""
