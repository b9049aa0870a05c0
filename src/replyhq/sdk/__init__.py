"""The Python SDK, kept importable as `replyhq.sdk` (our tests, benchmarks and the conformance
adapter use it): it lives in its own distribution, `replyhq-sdk` (sdk/python, package
`replyhq_sdk`), which the server's package also carries."""

import sys
from pathlib import Path

try:
    import replyhq_sdk
except ImportError:  # an editable install older than sdk/python (pip install -e . fixes it)
    sys.path.append(str(Path(__file__).resolve().parents[3] / "sdk" / "python" / "src"))
    import replyhq_sdk

import replyhq_sdk.client
from replyhq_sdk import ReplyHQClient, ReplyHQError, ReplyHQSyncClient

sys.modules[__name__ + ".client"] = replyhq_sdk.client  # `from replyhq.sdk.client import ...`

__all__ = ["ReplyHQClient", "ReplyHQError", "ReplyHQSyncClient", "replyhq_sdk"]
