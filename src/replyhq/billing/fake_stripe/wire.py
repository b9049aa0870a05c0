"""Stripe's wire format as the fake speaks it: form decoding, errors, webhook signatures, and the
parameters each call accepts (Stripe refuses any other)."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import time
from typing import Any
from urllib.parse import parse_qsl

API_VERSION = "2026-10-28.endive"  # the pinned `stripe` library's version

# Parameters each call accepts (top-level names); Stripe refuses any other.
ALLOWED: dict[str, set[str]] = {
    "customers.create": {"email", "name", "metadata", "description", "expand"},
    "prices.create": {
        "currency",
        "unit_amount",
        "recurring",
        "product_data",
        "product",
        "lookup_key",
        "nickname",
        "metadata",
        "expand",
    },
    "checkout.create": {
        "mode",
        "line_items",
        "success_url",
        "cancel_url",
        "customer",
        "customer_email",
        "client_reference_id",
        "metadata",
        "subscription_data",
        "allow_promotion_codes",
        "expand",
    },
    "portal.create": {"customer", "return_url", "expand"},
    "subscriptions.update": {
        "items",
        "proration_behavior",
        "proration_date",
        "cancel_at_period_end",
        "metadata",
        "expand",
    },
    "subscriptions.cancel": {"expand", "prorate", "invoice_now"},
    "invoices.create_preview": {
        "customer",
        "subscription",
        "subscription_details",
        "expand",
    },
    "retrieve": {"expand"},
}


class StripeError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = (
            status,
            message,
            type,
            param,
            code,
        )

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.param is not None:
            error["param"] = self.param
        if self.code is not None:
            error["code"] = self.code
        return {"error": error}


def missing(param: str) -> StripeError:
    return StripeError(
        400, f"Missing required param: {param}.", param=param, code="parameter_missing"
    )


def invalid(param: str, message: str) -> StripeError:
    return StripeError(400, message, param=param, code="parameter_invalid")


def decode_form(body: str) -> dict[str, Any]:
    """Stripe's bracketed form encoding (`a[b][0][c]=v`) into nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True, strict_parsing=False):
        head, _, rest = key.partition("[")
        parts = [head] + ([p.rstrip("]") for p in ("[" + rest).split("[")[1:]] if rest else [])
        node = root
        for part, following in itertools.zip_longest(parts, parts[1:]):
            if following is None:
                node[part] = value
            else:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise invalid(key, f"Invalid parameter: {key}.")
    decoded: dict[str, Any] = _lists(root)
    return decoded


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {k: _lists(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


def sign(payload: str, secret: str, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header Stripe sends with `payload`."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def public(obj: dict[str, Any]) -> dict[str, Any]:
    """An object as the API shows it (without the fake's own bookkeeping)."""
    return {k: v for k, v in obj.items() if not k.startswith("_")}


# --- reading parameters ------------------------------------------------------------------


def metadata_param(params: dict[str, Any]) -> dict[str, str]:
    metadata = params.get("metadata", {})
    if metadata == "":
        return {}
    if not isinstance(metadata, dict) or any(
        isinstance(v, (dict, list)) for v in metadata.values()
    ):
        raise invalid("metadata", "Invalid object")
    if len(metadata) > 50:
        raise invalid("metadata", "Metadata can have at most 50 keys.")
    return {str(k): str(v) for k, v in metadata.items()}


def integer_param(
    params: dict[str, Any], name: str, param: str | None = None, *, default: int | None = None
) -> int:
    if name not in params:
        if default is None:
            raise missing(param or name)
        return default
    try:
        return int(params[name])
    except (TypeError, ValueError):
        raise invalid(param or name, f"Invalid integer: {params[name]}") from None


def boolean_param(params: dict[str, Any], name: str) -> bool:
    value = params[name]
    if value not in ("true", "false"):
        raise invalid(name, f"Invalid boolean: {value}")
    return bool(value == "true")


def list_param(params: dict[str, Any], name: str, param: str | None = None) -> list[dict[str, Any]]:
    value = params.get(name)
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise invalid(param or name, "Invalid array")
    return value


# --- running it --------------------------------------------------------------------------------
