"""`python -m bench [NAME...]`: run the benchmarks (all of bench/bench_*.py, or the NAMEs given,
e.g. `keys rls`), print one table, write bench/results/<timestamp>.json and latest.json."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).parent
RESULTS = BENCH_DIR / "results"
COLUMNS = ("name", "metric", "value", "unit", "baseline", "ratio", "goal", "pass")


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in BENCH_DIR.glob("bench_*.py"))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "pass" if value else "FAIL"
    if isinstance(value, float):
        if value != value:  # NaN
            return "n/a"
        if value == 0 or abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        if abs(value) < 0.001:
            return f"{value:.1e}"
        return f"{value:.3f}"
    return str(value)


def _json_safe(value: Any) -> Any:
    return None if isinstance(value, float) and value != value else value


def table(rows: list[dict[str, Any]]) -> str:
    cells = [[_cell(r.get(c)) for c in COLUMNS] for r in rows]
    widths = [max([len(c)] + [len(line[i]) for line in cells]) for i, c in enumerate(COLUMNS)]
    numeric = {"value", "baseline", "ratio"}

    def fmt(line: list[str]) -> str:
        parts = [
            v.rjust(w) if COLUMNS[i] in numeric else v.ljust(w)
            for i, (v, w) in enumerate(zip(line, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    out = [fmt(list(COLUMNS)), fmt(["-" * w for w in widths])]
    out += [fmt(line) for line in cells]
    notes = [f"  [{r['name']}] {r['metric']}: {r['note']}" for r in rows if r.get("note")]
    if notes:
        out += ["", "notes:", *notes]
    return "\n".join(out)


def machine() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": load,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"any of: {available()}")
    args = parser.parse_args(argv)
    names = args.names or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        parser.error(f"no such benchmark: {', '.join(unknown)} (have: {', '.join(available())})")

    started = dt.datetime.now(dt.UTC)
    rows: list[dict[str, Any]] = []
    failures: dict[str, str] = {}
    for name in names:
        print(f"== {name}", flush=True)
        began = time.monotonic()
        try:
            module = importlib.import_module(f"bench.bench_{name}")
            produced = module.run()
        except Exception:
            failures[name] = traceback.format_exc()
            print(failures[name], file=sys.stderr, flush=True)
            continue
        print(f"   {len(produced)} rows in {time.monotonic() - began:.0f} s", flush=True)
        rows.extend(produced)

    print()
    print(table(rows))
    report = {
        "started_at": started.isoformat(),
        "finished_at": dt.datetime.now(dt.UTC).isoformat(),
        "machine": machine(),
        "benchmarks": names,
        "rows": [{k: _json_safe(v) for k, v in r.items()} for r in rows],
        "errors": failures,
    }
    RESULTS.mkdir(exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(report, indent=2, ensure_ascii=False, default=str)
    (RESULTS / f"{stamp}.json").write_text(text)
    (RESULTS / "latest.json").write_text(text)
    print(f"\nwritten: {RESULTS / f'{stamp}.json'} and latest.json")
    if failures:
        print(f"benchmarks that failed to run: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
