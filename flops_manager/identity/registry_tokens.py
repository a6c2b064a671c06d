"""The manager's registry signing key: registry bearer tokens and project registry logins.

One EC P-256 key, with a self-signed certificate, lives in ``FLOPS_REGISTRY_KEY_DIR``
(``key.pem``, ``cert.pem``; made on first use). The registry trusts the certificate
(``auth.token.rootcertbundle``). With the key the manager signs

* **registry tokens** (ES256 JWTs, ``aud`` = the registry's service name) that the registry
  checks; their header names the key by its libtrust key id (``kid``), which is how
  distribution 2.8 matches a token to a certificate of its bundle;
* **registry logins** of one project: a password that is itself a short ES256 JWT
  (``aud`` = :data:`LOGIN_AUDIENCE`, so it is never accepted as a registry token), naming
  the project and the kind of login. The token endpoint verifies it and then checks that
  the project still runs, so a login dies with its project and at its expiry at the latest.

``python -m flops_manager.identity.registry_tokens DIR [--owner UID]`` makes the key and
certificate in DIR if they are missing, owned by UID (the compose suite's ``registry-key``
service, before the registry starts).
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import datetime
import fcntl
import hashlib
import os
import secrets
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

LOGIN_AUDIENCE = "flops-registry-login"
LOGIN_PREFIX = "flops-"
"""User names of project logins start with this (``flops-builder.<project id>``)."""
ALGORITHM = "ES256"


@dataclasses.dataclass(frozen=True)
class ProjectLogin:
    """What a verified project login claims."""

    project_id: str
    kind: str
    role: str


def libtrust_key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """The libtrust key id of ``public_key`` (what distribution matches a JWT's ``kid`` to).

    SHA-256 of the DER SubjectPublicKeyInfo, first 240 bits, base32, in groups of four.
    """
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    text = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(text[i:i + 4] for i in range(0, len(text), 4))


def _self_signed(key: ec.EllipticCurvePrivateKey, name: str) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .sign(key, hashes.SHA256()))


class RegistryKeys:
    """The signing key in ``directory`` (created with its certificate when absent).

    Parameters
    ----------
    directory
        Holds ``key.pem`` (mode 0600) and ``cert.pem``.
    issuer
        The tokens' ``iss`` (the registry's ``auth.token.issuer``) and the certificate's name.
    """

    def __init__(self, directory: Path, *, issuer: str) -> None:
        self.directory = directory.expanduser()
        self.issuer = issuer
        self.key = self._load_or_create()
        self.key_id = libtrust_key_id(self.key.public_key())

    @property
    def cert_path(self) -> Path:
        """The certificate the registry trusts (its ``rootcertbundle``)."""
        return self.directory / "cert.pem"

    def _load_or_create(self) -> ec.EllipticCurvePrivateKey:
        """Load the key, or make it and its certificate (under a lock: one maker wins)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return self._load() or self._create()
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _load(self) -> ec.EllipticCurvePrivateKey | None:
        key_path = self.directory / "key.pem"
        if not (key_path.is_file() and self.cert_path.is_file()):
            return None
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_path} is not an EC private key")
        return key

    def _create(self) -> ec.EllipticCurvePrivateKey:
        key_path = self.directory / "key.pem"
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        tmp = key_path.with_name(f".key-{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        cert = _self_signed(key, self.issuer).public_bytes(serialization.Encoding.PEM)
        self.cert_path.write_bytes(cert)
        os.replace(tmp, key_path)
        return key

    def sign(self, claims: dict[str, Any]) -> str:
        """An ES256 JWT of ``claims`` whose ``kid`` names this key the libtrust way."""
        return jwt.encode(claims, self.key, algorithm=ALGORITHM,
                          headers={"kid": self.key_id, "typ": "JWT"})

    def login(self, *, project_id: str, role: str, kind: str, now: float,
              ttl_s: float) -> tuple[str, str]:
        """A registry login ``(username, password)`` of one project, valid ``ttl_s``."""
        claims = {"iss": self.issuer, "aud": LOGIN_AUDIENCE, "sub": f"{project_id}/{role}",
                  "project": project_id, "role": role, "kind": kind, "iat": int(now),
                  "exp": int(now + ttl_s), "jti": secrets.token_hex(8)}
        return f"{LOGIN_PREFIX}{kind}.{project_id}", self.sign(claims)

    def verify_login(self, password: str, *, now: float) -> ProjectLogin | None:
        """The project login ``password`` is, or ``None`` (not ours, tampered or expired)."""
        try:
            claims = jwt.decode(password, self.key.public_key(), algorithms=[ALGORITHM],
                                audience=LOGIN_AUDIENCE, issuer=self.issuer,
                                options={"verify_exp": False, "require": ["exp", "project"]})
        except jwt.PyJWTError:
            return None
        if now >= float(claims["exp"]):
            return None
        return ProjectLogin(str(claims["project"]), str(claims.get("kind", "")),
                            str(claims.get("role", "")))


class Keyring:
    """The :class:`RegistryKeys` of one manager, loaded (or made) on first use, once.

    Enrollment (builder logins), the token endpoint and the Docker backend's pulls share it.
    """

    def __init__(self, directory: Path, *, issuer: str) -> None:
        self.directory = directory
        self.issuer = issuer
        self._keys: RegistryKeys | None = None
        self._lock = threading.Lock()

    def get(self) -> RegistryKeys:
        """The keys (created in ``directory`` by the first caller)."""
        with self._lock:
            if self._keys is None:
                self._keys = RegistryKeys(self.directory, issuer=self.issuer)
            return self._keys


def main(argv: Sequence[str] | None = None) -> int:
    """Make the key and certificate in the directory given (if missing); print the cert."""
    parser = argparse.ArgumentParser(prog="python -m flops_manager.identity.registry_tokens",
                                     description="make the registry token signing key")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--issuer", default="flops-manager")
    parser.add_argument("--owner", type=int, default=None,
                        help="uid the directory and files are handed to (the manager's)")
    args = parser.parse_args(argv)
    keys = RegistryKeys(args.directory, issuer=args.issuer)
    if args.owner is not None:
        for path in (keys.directory, keys.directory / ".lock", keys.directory / "key.pem",
                     keys.cert_path):
            os.chown(path, args.owner, -1)
    print(f"{keys.cert_path} (kid {keys.key_id})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
