"""The one error type of the manifest package: a bad app folder applies nothing.

Every message names the file, the field and why, in one line, so that it can go as is
into a condition message; it never quotes file content (a file may be sensitive).
"""

from __future__ import annotations

MANIFEST_INVALID = "ManifestInvalid"
MANIFEST_NOT_FOUND = "ManifestNotFound"
MANIFEST_TOO_LARGE = "ManifestTooLarge"
PATH_ESCAPE = "PathEscape"
TEMPLATE_ERROR = "TemplateError"


class ManifestError(Exception):
    """The app folder cannot be turned into a desired state; `reason` is CamelCase."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __repr__(self) -> str:
        return f"ManifestError({self.reason!r}, {self.message!r})"
