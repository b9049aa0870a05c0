"""Push credentials at rest: Fernet (AES-128-CBC + HMAC-SHA256) under PUSH_CREDENTIALS_KEY.

Several comma-separated keys rotate it: the first encrypts, every one decrypts (MultiFernet), so
an operator adds a new key in front, re-saves or leaves old rows, and later drops the old key."""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class CredentialsUnreadable(Exception):
    """Stored credentials that no configured key opens (the key was changed without rotation)."""


@lru_cache(maxsize=4)
def _fernet(keys: str) -> MultiFernet:
    return MultiFernet([Fernet(k.strip().encode()) for k in keys.split(",") if k.strip()])


def check_keys(keys: str) -> None:
    """Raise ValueError unless `keys` is one or more valid Fernet keys."""
    try:
        _fernet(keys)
    except (ValueError, TypeError) as error:
        raise ValueError(f"PUSH_CREDENTIALS_KEY: {error}") from None


def encrypt(keys: str, secret: bytes) -> bytes:
    return _fernet(keys).encrypt(secret)


def decrypt(keys: str, token: bytes) -> bytes:
    try:
        return _fernet(keys).decrypt(token)
    except InvalidToken:
        raise CredentialsUnreadable("no PUSH_CREDENTIALS_KEY opens these credentials") from None
