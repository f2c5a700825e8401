"""Who is calling, and which sessions they may use (the endpoint's trust boundary).

Two modes, chosen by whether the server has API keys:

* **Keyed** (`ApiKeys`): every request sends ``Authorization: Bearer <key>``; the key
  maps to an *owner*. The owner is the run's principal (`Principal(user=owner)`, which
  policy conditions read) and the namespace of its sessions: a session named ``chat``
  by owner ``alice`` is stored as ``openai:alice:chat``, so the same name sent with
  Bob's key is Bob's own session and Alice's conversation is out of his reach whatever
  he sends. A named session is created on first use.
* **Open** (no keys; for loopback and trusted networks): anyone may call. Session names
  are capabilities: the client asks for a new session (``X-Pilothouse-Session: new``)
  and the server makes one with a name of 144 random bits, returned in the response's
  ``X-Pilothouse-Session`` header; a name the server did not make is refused (404), so
  a guessed or chosen name reaches nothing.

In both, only sessions this endpoint created are reachable: each carries
``{"endpoint": "openai", "owner": ...}`` in its metadata, checked on every use, so a
session made by another application in the same store (the support desk's) cannot be
driven through the endpoint by naming its id. A session of someone else is answered
exactly like one that does not exist (404): the answer does not tell whether it exists.

Nothing else in a request says who the caller is: headers such as ``X-Pilothouse-Owner``
or ``X-Forwarded-User`` are not read.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from pathlib import Path

from pilothouse.exceptions import (
    ConfigurationError,
    RequestRejected,
    SessionExistsError,
    SessionNotFoundError,
)
from pilothouse.runtime.journal import Store
from pilothouse.serving.protocol import SESSION_NAME

OWNER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
"""An owner's name: it is part of its sessions' ids, so it cannot hold ``:``."""
NEW_SESSION = "new"
"""The session name that asks the server for a new, unguessable session."""
ENDPOINT_TAG = "openai"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class ApiKeys:
    """API keys and the owner each stands for. Keys are kept as SHA-256 digests and
    looked up by digest, so a comparison takes the same time whatever a wrong key
    shares with a right one, and the keys are not kept in memory in clear."""

    def __init__(self, keys: Mapping[str, str]) -> None:
        """`keys`: key -> owner. A key must be 16 characters or more (a guessable key
        is no boundary); owners are 1-64 letters, digits, ``_ . -``."""
        if not keys:
            raise ConfigurationError("ApiKeys needs at least one key")
        self._owners: dict[str, str] = {}
        for key, owner in keys.items():
            if not isinstance(key, str) or len(key) < 16 or key != key.strip():
                raise ConfigurationError(
                    f"the API key of {owner!r} is too short (16 characters at least) or "
                    "has surrounding spaces"
                )
            if not isinstance(owner, str) or not OWNER.fullmatch(owner):
                raise ConfigurationError(
                    f"owner {owner!r}: 1-64 letters, digits, '_', '.' or '-' (not first)"
                )
            self._owners[_digest(key)] = owner

    @classmethod
    def from_file(cls, path: str | Path) -> ApiKeys:
        """Keys from a text file: one ``owner key`` pair a line; blank lines and lines
        starting with ``#`` are skipped."""
        keys: dict[str, str] = {}
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            where = str(path)
            raise ConfigurationError(f"cannot read the API keys file {where!r}: {exc}") from None
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            owner, _, key = line.partition(" ")
            if not key.strip():
                raise ConfigurationError(f"{path}:{number}: expected 'owner key'")
            keys[key.strip()] = owner
        return cls(keys)

    def digests(self) -> set[str]:
        """The keys' digests (to tell two key sets apart without the keys)."""
        return set(self._owners)

    def owner_of(self, authorization: str | None) -> str | None:
        """The owner of the request's bearer key, or None if it is not one of these."""
        token = _bearer(authorization)
        return None if token is None else self._owners.get(_digest(token))

    def owner(self, authorization: str | None) -> str:
        """The owner of the request's bearer key; `RequestRejected` (401) otherwise."""
        token = _bearer(authorization)
        if token is None:
            raise RequestRejected(
                401,
                "missing API key: send 'Authorization: Bearer <key>'",
                type="invalid_request_error",
                code="invalid_api_key",
            )
        owner = self._owners.get(_digest(token))
        if owner is None:
            raise RequestRejected(
                401, "incorrect API key", type="invalid_request_error", code="invalid_api_key"
            )
        return owner


def session_id(owner: str | None, name: str) -> str:
    """The store id of `owner`'s session `name` (owner None: the open mode's)."""
    return f"{ENDPOINT_TAG}:{owner or '-'}:{name}"


def open_session(store: Store, owner: str | None, name: str, *, keyed: bool) -> tuple[str, str]:
    """The (name, store id) of the session a request names, created where the mode
    allows: ``new`` makes one with a random name; in keyed mode an unknown name is
    created for its owner; otherwise an unknown, foreign or non-endpoint session is 404."""
    if name == NEW_SESSION:
        while True:
            name = secrets.token_urlsafe(18)
            sid = session_id(owner, name)
            try:
                store.create_session(sid, {"endpoint": ENDPOINT_TAG, "owner": owner})
            except SessionExistsError:  # 144 random bits: never, but never mind
                continue
            return name, sid
    if not SESSION_NAME.fullmatch(name):
        raise RequestRejected(
            400,
            "a session name is 1 to 128 letters, digits or . _ @ + ~ -",
            param="X-Pilothouse-Session",
        )
    sid = session_id(owner, name)
    if keyed:
        try:
            store.create_session(sid, {"endpoint": ENDPOINT_TAG, "owner": owner})
            return name, sid
        except SessionExistsError:
            pass  # it exists: checked below like any other
    try:
        info = store.get_session(sid)
    except SessionNotFoundError:
        info = None
    if (
        info is None
        or info.metadata.get("endpoint") != ENDPOINT_TAG
        or (info.metadata.get("owner") != owner)
    ):
        raise RequestRejected(
            404,
            f"no session named {name!r}: ask for a new one with 'X-Pilothouse-Session: new'",
            code="session_not_found",
            param="X-Pilothouse-Session",
        )
    return name, sid
