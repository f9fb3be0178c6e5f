"""Private keys from Kubernetes Secrets, parsed once per Secret version.

Parsing an RSA key (and above all deriving a passphrase with bcrypt) costs milliseconds
of CPU; with thousands of targets sharing one Secret the controller would otherwise
parse the same bytes on every reconcile. The cache is keyed by the Secret's uid and
resourceVersion, so an edited or re-created Secret is parsed again and nothing stale
survives a rotation.

Input is the Secret as the API returns it, a plain mapping (`{"type": ..., "data":
{name: base64}}`): this module imports no Kubernetes client. Errors name the Secret and
the key inside it and never carry key material, the passphrase, or the parser's own
message (which could quote input).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import asyncssh

from .errors import CredentialsMissing

SSH_AUTH_TYPE = "kubernetes.io/ssh-auth"
PRIVATE_KEY_FIELD = "ssh-privatekey"
PASSPHRASE_FIELD = "passphrase"  # noqa: S105 - the name of a Secret key, not a secret


def _where(namespace: str, name: str) -> str:
    return f"Secret {namespace}/{name}"


def secret_bytes(
    secret: Mapping[str, Any] | None,
    *,
    namespace: str,
    name: str,
    field: str,
    optional: bool = False,
) -> bytes | None:
    """Decode one `data` entry of a Secret; `None` only when `optional` and absent."""
    if secret is None:
        raise CredentialsMissing(f"{_where(namespace, name)} not found")
    data = secret.get("data") or {}
    if not isinstance(data, Mapping):
        raise CredentialsMissing(f"{_where(namespace, name)} has no data")
    value = data.get(field)
    if value is None or value == "":
        if optional:
            return None
        raise CredentialsMissing(f"{_where(namespace, name)} has no key {field!r}")
    try:
        if isinstance(value, bytes):
            return base64.b64decode(value, validate=True)
        if isinstance(value, str):
            return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        pass
    raise CredentialsMissing(f"{_where(namespace, name)} key {field!r} is not valid base64")


def _strip_newline(value: bytes) -> bytes:
    """A passphrase stored from a file usually ends in a newline ssh-keygen never saw."""
    if value.endswith(b"\r\n"):
        return value[:-2]
    if value.endswith(b"\n"):
        return value[:-1]
    return value


def parse_private_key(
    secret: Mapping[str, Any] | None, *, namespace: str, name: str
) -> asyncssh.SSHKey:
    """Parse the `ssh-privatekey` of an ssh-auth Secret (no caching)."""
    where = _where(namespace, name)
    if secret is None:
        raise CredentialsMissing(f"{where} not found")
    secret_type = secret.get("type")
    if secret_type != SSH_AUTH_TYPE:
        raise CredentialsMissing(
            f"{where} has type {secret_type!r}; want {SSH_AUTH_TYPE!r} "
            f"with key {PRIVATE_KEY_FIELD!r}"
        )
    key_data = secret_bytes(secret, namespace=namespace, name=name, field=PRIVATE_KEY_FIELD)
    passphrase = secret_bytes(
        secret, namespace=namespace, name=name, field=PASSPHRASE_FIELD, optional=True
    )
    if passphrase is not None:
        passphrase = _strip_newline(passphrase)
    assert key_data is not None
    try:
        return asyncssh.import_private_key(key_data, passphrase)
    except asyncssh.KeyEncryptionError:
        problem = "wrong passphrase"
    except asyncssh.KeyImportError as exc:
        # Only asyncssh's fixed wording is inspected, never shown: it could quote input.
        text = str(exc)
        if "Passphrase must be specified" in text:
            problem = "encrypted"
        elif passphrase is not None and "decrypt" in text.lower():
            problem = "wrong passphrase"
        else:
            problem = "malformed"
    except Exception:  # any other parser failure means a malformed key
        problem = "malformed"
    if problem == "encrypted":
        message = (
            f"{where} key {PRIVATE_KEY_FIELD!r} is encrypted and the Secret has no "
            f"key {PASSPHRASE_FIELD!r}"
        )
    elif problem == "wrong passphrase":
        message = f"{where} key {PASSPHRASE_FIELD!r} does not decrypt key {PRIVATE_KEY_FIELD!r}"
    else:
        message = (
            f"{where} key {PRIVATE_KEY_FIELD!r} is not a private key in OpenSSH, PEM or PKCS#8 form"
        )
    raise CredentialsMissing(message)


class KeyCache:
    """Parsed private keys by (namespace, name, uid, resourceVersion), least recently used out.

    Thread-safe, so `load_async` can parse in a worker thread without blocking the loop.
    """

    def __init__(self, max_entries: int = 1024) -> None:
        self._max_entries = max_entries
        self._keys: OrderedDict[tuple[str, str, str, str], asyncssh.SSHKey] = OrderedDict()
        self._lock = threading.Lock()
        #: How many times a key was actually parsed (cache misses); for tests and metrics.
        self.parses = 0

    def load(
        self,
        secret: Mapping[str, Any] | None,
        *,
        namespace: str,
        name: str,
        uid: str | None = None,
        resource_version: str | None = None,
    ) -> asyncssh.SSHKey:
        """The Secret's private key; uid and resourceVersion default to its metadata."""
        cache_key = self._cache_key(secret, namespace, name, uid, resource_version)
        if cache_key is not None:
            with self._lock:
                key = self._keys.get(cache_key)
                if key is not None:
                    self._keys.move_to_end(cache_key)
                    return key
        key = parse_private_key(secret, namespace=namespace, name=name)
        with self._lock:
            self.parses += 1
            if cache_key is not None:
                self._keys[cache_key] = key
                while len(self._keys) > self._max_entries:
                    self._keys.popitem(last=False)
        return key

    async def load_async(
        self,
        secret: Mapping[str, Any] | None,
        *,
        namespace: str,
        name: str,
        uid: str | None = None,
        resource_version: str | None = None,
    ) -> asyncssh.SSHKey:
        """Like `load`, parsing a cache miss in a worker thread (bcrypt is slow)."""
        cache_key = self._cache_key(secret, namespace, name, uid, resource_version)
        if cache_key is not None:
            with self._lock:
                key = self._keys.get(cache_key)
            if key is not None:
                return key
        return await asyncio.to_thread(
            self.load,
            secret,
            namespace=namespace,
            name=name,
            uid=uid,
            resource_version=resource_version,
        )

    def __len__(self) -> int:
        return len(self._keys)

    @staticmethod
    def _cache_key(
        secret: Mapping[str, Any] | None,
        namespace: str,
        name: str,
        uid: str | None,
        resource_version: str | None,
    ) -> tuple[str, str, str, str] | None:
        if secret is None:
            return None
        metadata = secret.get("metadata")
        if isinstance(metadata, Mapping):
            uid = uid or metadata.get("uid")
            resource_version = resource_version or metadata.get("resourceVersion")
        if not uid or not resource_version:
            return None  # no identity to cache under: parse every time rather than guess
        return (namespace, name, str(uid), str(resource_version))
