"""The thin kopf layer; importing this package registers every handler."""

from vmgitops.handlers import applications, startup, targets

__all__ = ["applications", "startup", "targets"]
