"""The conformance suite for client SDKs: `python -m replyhq.conformance` (docs/conformance.md)."""
