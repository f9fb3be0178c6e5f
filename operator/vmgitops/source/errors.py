"""Git source failures, each carrying the CamelCase reason that ends up in a condition.

Messages name the repository without its userinfo, say what failed and what to do, and
never carry a password, token or key (git's own output is scrubbed before it is quoted).
"""

from __future__ import annotations


class SourceError(Exception):
    """Git could not give us the desired state; `reason` is CamelCase."""

    reason: str = "SourceError"
    #: False when retrying cannot help until a human changes something (flux's "stalled").
    retryable: bool = True

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class GitFetchFailed(SourceError):
    """The repository could not be listed or fetched: server down, timeout, refused."""

    reason = "GitFetchFailed"


class RepoURLRefused(GitFetchFailed):
    """spec.source.repoURL is malformed or outside the source policy; nothing was contacted."""

    reason = "RepoURLRefused"
    retryable = False


class GitCredentialsInvalid(GitFetchFailed):
    """The credentials Secret has the wrong type, lacks a key, or does not fit the URL."""

    reason = "GitCredentialsInvalid"
    retryable = False


class GitAuthenticationFailed(GitFetchFailed):
    """The server refused our credentials, or its SSH host key is not the known one."""

    reason = "GitAuthenticationFailed"
    retryable = False


class RevisionNotFound(SourceError):
    """targetRevision names no branch, tag or commit of the repository (yet)."""

    reason = "RevisionNotFound"


class PathNotFound(SourceError):
    """spec.source.path is not a folder of the checked-out revision."""

    reason = "PathNotFound"


class PathEscape(PathNotFound):
    """spec.source.path leaves the checkout ('..', absolute, or through a symlink)."""

    reason = "PathEscape"
    retryable = False


class RepositoryTooLarge(SourceError):
    """The mirror or one commit's tree is above the configured size limits."""

    reason = "RepositoryTooLarge"
    retryable = False
