"""`python -m replyhq.conformance [--serve | --url URL --master-key KEY] -- <adapter command>`:
runs the client behind the adapter through the protocol's rules with faults, prints a pass/fail
line per rule, and exits 1 when any rule failed."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from replyhq.conformance.runner import RULES, report, run_suite


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m replyhq.conformance",
        description="Check a ReplyHQ client SDK against a live server, with faults.",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="a running server (its restart is then simulated)")
    where.add_argument(
        "--serve",
        action="store_true",
        help="start `replyhq serve` here (this environment's DATABASE_URL, REDIS_URL...) and "
        "restart it for real in the server_restart rule",
    )
    parser.add_argument(
        "--master-key",
        default=os.environ.get("MASTER_API_KEY"),
        help="the server's MASTER_API_KEY, to create a throwaway app (with --url)",
    )
    parser.add_argument(
        "--serve-arg", action="append", default=[], help="passed to `replyhq serve` (repeat)"
    )
    parser.add_argument(
        "--wait", type=float, default=30.0, help="seconds a rule waits for the client"
    )
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    parser.add_argument("adapter", nargs=argparse.REMAINDER, help="-- the adapter's command")
    args = parser.parse_args(argv)
    command = args.adapter[1:] if args.adapter[:1] == ["--"] else args.adapter
    if not command:
        parser.error("give the adapter's command after --")
    if args.url and not args.master_key:
        parser.error("--url needs --master-key (or MASTER_API_KEY)")
    log = Path(tempfile.gettempdir()) / f"replyhq-conformance-{os.getpid()}.log"
    results = asyncio.run(
        run_suite(
            command,
            url=args.url,
            master_key=args.master_key,
            serve_args=args.serve_arg if args.serve else None,
            log=log,
            wait=args.wait,
        )
    )
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    assert len(results) == len(RULES)
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
