"""The benchmarks: one program, `python -m launch.bench` (its usage: __main__.py)."""
