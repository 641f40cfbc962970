"""tinylatent's benchmark suite (pytest): tinylatent next to PyTorch, as ratios.

Run `python -m pytest -q benchmarks` (full) or `... --quick`; see harness.py for the API and
`python -m benchmarks.report` for the table and a bar chart.
"""
