"""Git source: fetch cache, revision resolution, immutable checkouts.

The rest of vmgitops holds one `GitSource` per process: `resolve()` turns
spec.source.targetRevision into a commit, `checkout()` that commit into a read-only
folder, and a `SourceError`'s `reason` goes into a condition (`retryable` False means a
human must act first, flux's "stalled").
"""

from .checkout import TreeLimits, checked_subpath, resolve_app_folder
from .credentials import (
    BASIC_AUTH_TYPE,
    SSH_AUTH_TYPE,
    BasicAuth,
    GitCredentials,
    SecretLike,
    SSHAuth,
    credentials_from_secret,
)
from .errors import (
    GitAuthenticationFailed,
    GitCredentialsInvalid,
    GitFetchFailed,
    PathEscape,
    PathNotFound,
    RepositoryTooLarge,
    RepoURLRefused,
    RevisionNotFound,
    SourceError,
)
from .gitsource import CACHE_DIR_ENV, GitSource, Resolved, default_cache_dir
from .revisions import Refs, RevisionMatch, match_revision, normalize_revision, parse_refs
from .scrub import Scrubber, secret_forms
from .urls import RepoURL, SourcePolicy, URLRefused, parse_repo_url, redact_urls

__all__ = [
    "BASIC_AUTH_TYPE",
    "CACHE_DIR_ENV",
    "SSH_AUTH_TYPE",
    "BasicAuth",
    "GitAuthenticationFailed",
    "GitCredentials",
    "GitCredentialsInvalid",
    "GitFetchFailed",
    "GitSource",
    "PathEscape",
    "PathNotFound",
    "Refs",
    "RepoURL",
    "RepoURLRefused",
    "RepositoryTooLarge",
    "Resolved",
    "RevisionMatch",
    "RevisionNotFound",
    "SSHAuth",
    "Scrubber",
    "SecretLike",
    "SourceError",
    "SourcePolicy",
    "TreeLimits",
    "URLRefused",
    "checked_subpath",
    "credentials_from_secret",
    "default_cache_dir",
    "match_revision",
    "normalize_revision",
    "parse_refs",
    "parse_repo_url",
    "redact_urls",
    "resolve_app_folder",
    "secret_forms",
]
