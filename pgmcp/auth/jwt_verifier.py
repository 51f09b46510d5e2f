"""JWT bearer tokens, verified with PyJWT against the issuer's public keys.

Checked: the signature, `exp` (required), `nbf`, `iss` and `aud` (both required), with
`auth.jwt.leeway` of clock skew. Only asymmetric algorithms are accepted, and only the ones
that fit the key's type (an RSA key verifies RS*/PS*, an EC key ES*, an Ed25519 key EdDSA):
`alg: none` and the algorithm-confusion attack (an HS256 token whose HMAC secret is the
public key) are refused before any signature is computed. Keys come from a JWKS URL, a JWKS
file or a PEM public key file; an unknown `kid` refetches the JWKS, at most once a minute,
so a rotated key is picked up and a flood of made-up kids cannot hammer the issuer.
"""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from loguru import logger

from pgmcp.config.model import JWTConfig
from pgmcp.errors import ConfigError, SourceLocation

ALGORITHMS_BY_KEY_TYPE = {
    "RSA": ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
    "EC": ("ES256", "ES384", "ES512"),
    "OKP": ("EdDSA",),
}
REFETCH_INTERVAL = 60.0  # seconds between JWKS fetches triggered by an unknown kid
FETCH_TIMEOUT = 5.0


@dataclass(frozen=True)
class VerifiedJWT:
    principal: str
    claims: dict[str, Any]
    expires_at: int | None


class JWTError(Exception):
    """Why a token was refused (logged; the client only sees 401)."""


@dataclass(frozen=True)
class _Key:
    key: Any
    algorithms: tuple[str, ...]


class JWTVerifier:
    def __init__(self, config: JWTConfig) -> None:
        self.config = config
        self._keys: dict[str | None, _Key] = {}
        self._fetched_at: float | None = None
        self._lock = anyio.Lock()
        if config.public_key_file:
            self._keys = {None: _pem_key(Path(config.public_key_file))}
        elif config.jwks_file:
            self._keys = _jwks_keys(_read_json_file(Path(config.jwks_file)))
            self._fetched_at = time.monotonic()

    async def verify(self, token: str) -> VerifiedJWT:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise JWTError(f"not a JWT: {exc}") from exc
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in {a for algs in ALGORITHMS_BY_KEY_TYPE.values() for a in algs}:
            raise JWTError(f"algorithm {alg!r} is not accepted (only RS*, PS*, ES*, EdDSA)")
        key = await self._key_for(kid if isinstance(kid, str) else None)
        if alg not in key.algorithms:
            raise JWTError(f"algorithm {alg} does not fit the key (allowed: {', '.join(key.algorithms)})")
        cfg = self.config
        try:
            claims = jwt.decode(
                token, key.key, algorithms=[alg], audience=cfg.audience, issuer=cfg.issuer, leeway=cfg.leeway,
                options={"require": ["exp", "iss", "aud"], "verify_signature": True},
            )
        except jwt.PyJWTError as exc:
            raise JWTError(f"{type(exc).__name__}: {exc}") from exc
        principal = claims.get(cfg.principal_claim)
        if not isinstance(principal, str) or not principal:
            raise JWTError(f"claim {cfg.principal_claim!r} (the principal) is missing or not a string")
        exp = claims.get("exp")
        return VerifiedJWT(principal, claims, int(exp) if isinstance(exp, (int, float)) else None)

    async def _key_for(self, kid: str | None) -> _Key:
        found = self._lookup(kid)
        if found is not None:
            return found
        if self.config.public_key_file:
            raise JWTError("no key")  # unreachable: the PEM key answers every kid
        async with self._lock:
            now = time.monotonic()
            if self._fetched_at is None or now - self._fetched_at >= REFETCH_INTERVAL:
                self._fetched_at = now
                try:
                    self._keys = await self._load_keys()
                except (OSError, ValueError, jwt.PyJWTError) as exc:
                    logger.warning("could not load the JWKS ({}): {}", self._source(), exc)
            found = self._lookup(kid)
        if found is None:
            raise JWTError(f"no key with kid {kid!r} in the JWKS")
        return found

    def _lookup(self, kid: str | None) -> _Key | None:
        if None in self._keys:
            return self._keys[None]
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    def _source(self) -> str:
        return self.config.jwks_url or self.config.jwks_file or ""

    async def _load_keys(self) -> dict[str | None, _Key]:
        if self.config.jwks_file:
            return _jwks_keys(_read_json_file(Path(self.config.jwks_file)))
        url = self.config.jwks_url or ""
        data = await anyio.to_thread.run_sync(_fetch_json, url)
        logger.info("fetched the JWKS from {} ({} keys)", url, len(data.get("keys", [])))
        return _jwks_keys(data)


def _fetch_json(url: str) -> dict[str, Any]:
    request = urllib.request.Request(url, headers={"accept": "application/json"})
    with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as response:
        data = json.loads(response.read(1_000_000))
    if not isinstance(data, dict):
        raise ValueError("the JWKS is not a JSON object")
    return data


def _read_json_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the JWKS file: {exc}", SourceLocation(str(path)),
                          hint="auth.jwt.jwks_file must be a JSON Web Key Set ({\"keys\": [...]})") from exc
    if not isinstance(data, dict):
        raise ConfigError("the JWKS file is not a JSON object", SourceLocation(str(path)),
                          hint="auth.jwt.jwks_file must be a JSON Web Key Set ({\"keys\": [...]})")
    return data


def _jwks_keys(data: dict[str, Any]) -> dict[str | None, _Key]:
    """The usable verification keys of a JWKS by kid (symmetric `oct` keys are never used)."""
    keys: dict[str | None, _Key] = {}
    for raw in data.get("keys", []):
        if not isinstance(raw, dict) or raw.get("kty") not in ALGORITHMS_BY_KEY_TYPE:
            continue
        if raw.get("use", "sig") != "sig":
            continue
        try:
            parsed = jwt.PyJWK(raw)
        except jwt.PyJWTError:
            continue
        allowed = ALGORITHMS_BY_KEY_TYPE[raw["kty"]]
        if isinstance(raw.get("alg"), str):
            allowed = tuple(a for a in allowed if a == raw["alg"])
        kid = raw.get("kid")
        keys[kid if isinstance(kid, str) else f"#{len(keys)}"] = _Key(parsed.key, allowed)
    return keys


def _pem_key(path: Path) -> _Key:
    where = SourceLocation(str(path))
    try:
        key = load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the public key: {exc}", where,
                          hint="auth.jwt.public_key_file must be a PEM public key (BEGIN PUBLIC KEY)") from exc
    if isinstance(key, rsa.RSAPublicKey):
        return _Key(key, ALGORITHMS_BY_KEY_TYPE["RSA"])
    if isinstance(key, ec.EllipticCurvePublicKey):
        return _Key(key, ALGORITHMS_BY_KEY_TYPE["EC"])
    if isinstance(key, ed25519.Ed25519PublicKey):
        return _Key(key, ALGORITHMS_BY_KEY_TYPE["OKP"])
    raise ConfigError(f"unsupported public key type {type(key).__name__}", where,
                      hint="use an RSA, EC or Ed25519 public key")
