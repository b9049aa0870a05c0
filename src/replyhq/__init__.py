"""ReplyHQ: in-app customer messaging as a service."""

__version__ = "0.1.0"
