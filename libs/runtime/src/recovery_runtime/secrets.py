"""Secrets at rest and on the broker: AES-256-GCM under a master key from configuration, with key ids.

A sealed value is one ASCII string, `enc:v1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`, so it fits any
string field of a document or a message. The key id names the master key that sealed it: rotating the master
key means adding a new key, making it active (new values are sealed under it) and keeping the old one until
every stored value has been re-sealed (`SecretBox.reseal`, which `recovery secrets reseal` runs over every
sealed field: docs/security.md, "Master-key rotation"); values under any configured key stay readable.

    box = SecretBox.from_settings(settings)
    sealed = box.seal("sk_live_...")       # store or publish this
    plaintext = box.open(sealed)           # only where the secret is used (signing, a connector call)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

log = structlog.get_logger(__name__)

PREFIX = "enc:v1:"
KEY_ID_PATTERN = r"[A-Za-z0-9_-]{1,32}"
_SEALED = re.compile(rf"^enc:v1:({KEY_ID_PATTERN}):([A-Za-z0-9_-]+)$")
_NONCE_BYTES = 12
KEY_BYTES = 32

# Used only when no master key is configured outside production: anyone can read what it seals.
DEVELOPMENT_KEY_ID = "dev-only"
_DEVELOPMENT_KEY = hashlib.sha256(b"recovery development-only master key: never protects real secrets").digest()


class InsecureConfiguration(RuntimeError):
    """The settings would run production without protection (no master key, a development default)."""


class SecretUnreadable(ValueError):
    """Not a sealed value, sealed under an unknown key id, or altered: the plaintext cannot be recovered."""


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and _SEALED.match(value) is not None


def generate_master_key() -> str:
    """A new master key as SECRETS_MASTER_KEY expects it: base64 of 32 random bytes."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


def decode_master_key(value: str, *, strict: bool) -> bytes:
    """Base64 of exactly 32 bytes. Outside production (`strict=False`) any other text is accepted as a
    passphrase and stretched with SHA-256, so development defaults such as compose's keep working."""
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) == KEY_BYTES:
        return key
    if strict:
        raise InsecureConfiguration("a secrets master key must be base64 of exactly 32 random bytes")
    log.warning("secrets.master_key_not_base64", hint="development only: derived from the text with SHA-256")
    return hashlib.sha256(value.encode()).digest()


def parse_master_keys(listing: str) -> list[tuple[str, str]]:
    """`id:base64,id:base64` (SECRETS_MASTER_KEYS) as (id, base64) pairs, in order."""
    pairs = []
    for item in filter(None, (part.strip() for part in listing.split(","))):
        key_id, sep, value = item.partition(":")
        if not sep or not re.fullmatch(KEY_ID_PATTERN, key_id.strip()):
            raise InsecureConfiguration(
                f"SECRETS_MASTER_KEYS entries are `id:base64key` with ids of {KEY_ID_PATTERN}; got {key_id!r}"
            )
        pairs.append((key_id.strip(), value.strip()))
    return pairs


@dataclass(frozen=True)
class SecretBox:
    """Seals and opens secrets with AES-256-GCM; `keys` maps key id to key, `active_key_id` seals."""

    keys: Mapping[str, bytes]
    active_key_id: str

    def __post_init__(self) -> None:
        if self.active_key_id not in self.keys:
            raise InsecureConfiguration(f"the active master key id {self.active_key_id!r} is not configured")
        for key_id, key in self.keys.items():
            if len(key) != KEY_BYTES or not re.fullmatch(KEY_ID_PATTERN, key_id):
                raise InsecureConfiguration(f"master key {key_id!r} must be 32 bytes with an id of {KEY_ID_PATTERN}")

    @classmethod
    def development(cls) -> SecretBox:
        return cls({DEVELOPMENT_KEY_ID: _DEVELOPMENT_KEY}, DEVELOPMENT_KEY_ID)

    @classmethod
    def from_settings(cls, settings: object) -> SecretBox:
        """From SECRETS_MASTER_KEY (+ SECRETS_MASTER_KEY_ID), SECRETS_MASTER_KEYS and SECRETS_ACTIVE_KEY_ID.

        Production (`settings.is_production`) refuses to build one without a configured key."""
        production = bool(getattr(settings, "is_production", False))
        pairs: list[tuple[str, str]] = parse_master_keys(getattr(settings, "secrets_master_keys", None) or "")
        single = getattr(settings, "secrets_master_key", None)
        if single:
            pairs.insert(0, (getattr(settings, "secrets_master_key_id", None) or "main", single))
        if not pairs:
            if production:
                raise InsecureConfiguration("production needs SECRETS_MASTER_KEY (or SECRETS_MASTER_KEYS)")
            log.warning("secrets.development_master_key", hint="set SECRETS_MASTER_KEY: secrets are not protected")
            return cls.development()
        keys: dict[str, bytes] = {}
        for key_id, value in pairs:
            key = decode_master_key(value, strict=production)
            if keys.setdefault(key_id, key) != key:
                raise InsecureConfiguration(f"master key id {key_id!r} is configured twice with different keys")
        active = getattr(settings, "secrets_active_key_id", None) or pairs[0][0]
        return cls(keys, active)

    def seal(self, plaintext: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        ciphertext = AESGCM(self.keys[self.active_key_id]).encrypt(
            nonce, plaintext.encode("utf-8"), self._associated(self.active_key_id)
        )
        token = base64.urlsafe_b64encode(nonce + ciphertext).rstrip(b"=").decode()
        return f"{PREFIX}{self.active_key_id}:{token}"

    def open(self, sealed: str) -> str:
        match = _SEALED.match(sealed) if isinstance(sealed, str) else None
        if match is None:
            raise SecretUnreadable("not a sealed secret")
        key_id, token = match.groups()
        key = self.keys.get(key_id)
        if key is None:
            raise SecretUnreadable(f"sealed under master key {key_id!r}, which is not configured")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            plaintext = AESGCM(key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], self._associated(key_id))
        except (InvalidTag, ValueError, binascii.Error) as error:
            raise SecretUnreadable(f"sealed secret under key {key_id!r} does not decrypt (altered?)") from error
        return plaintext.decode("utf-8")

    def open_optional(self, sealed: str | None) -> str | None:
        return None if sealed is None else self.open(sealed)

    def open_if_sealed(self, value: str) -> str:
        """`value` opened when it is sealed, any other text as it is: a field written or sent before it was
        sealed (an old document, an old message still in a queue or an outbox) keeps working."""
        return self.open(value) if is_sealed(value) else value

    def reseal(self, sealed: str) -> str:
        """The same secret under the active key (unchanged if it already is): the master-key rotation step."""
        if sealed.startswith(f"{PREFIX}{self.active_key_id}:"):
            return sealed
        return self.seal(self.open(sealed))

    @staticmethod
    def _associated(key_id: str) -> bytes:
        # Binds the key id into the tag: a value cannot be relabelled to another key id.
        return f"recovery-secret:v1:{key_id}".encode()
