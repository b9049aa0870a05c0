"""Benchmarks: `python -m bench [NAME...]` (or `make bench`) runs every `bench/bench_*.py`.

Each module exposes `run() -> list[dict]`; a row is

    {"name": "keys", "metric": "cached verify", "value": 3.1, "unit": "µs",
     "baseline": 250000.0, "ratio": 0.00001, "goal": "<= 50 µs", "pass": True}

(`bench.common.row` builds one and decides `pass` from a goal). `baseline`, `ratio`, `goal`,
`pass` and `note` may be None or absent. Benchmarks print and record; they never assert on time.
"""
