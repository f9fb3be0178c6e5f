"""The thin kopf layer; importing this package registers every handler."""

from vmgitops.handlers import startup, targets

__all__ = ["startup", "targets"]
