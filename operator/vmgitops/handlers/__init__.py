"""The thin kopf layer; importing this package registers every handler."""

from vmgitops.handlers import applications, pipelines, promotions, startup, targets

__all__ = ["applications", "pipelines", "promotions", "startup", "targets"]
