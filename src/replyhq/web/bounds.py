"""The ranges of PostgreSQL's integer columns: an integer input that reaches one is bounded by
its column's range in its schema, so that a larger one is a 400 and not an overflow (a 500)."""

from __future__ import annotations

INT4_MAX = 2**31 - 1  # integer (seq, last_read_seq)
INT8_MAX = 2**63 - 1  # bigint
