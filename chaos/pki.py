"""Certificates for the TLS/mTLS tests (gRPC and Redis): a CA, a server and a client certificate
it signs, and a client certificate from another CA. Generated per test run with trustme (ECDSA
P-256 keys, PEM files), leaves valid one day, never committed. trustme's leaf certificates
carry both the serverAuth and clientAuth usages; which one a file serves is its role here."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import trustme

SERVER_IDENTITIES = ("localhost", "127.0.0.1", "127.0.0.2", "127.0.0.3")
VALIDITY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class CertFiles:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    ca: Path
    server: CertFiles  # SAN: localhost, 127.0.0.1-3
    client: CertFiles  # the gateway's client certificate
    rogue_ca: Path
    rogue_client: CertFiles  # signed by another CA


def _ca(directory: Path, name: str) -> tuple[trustme.CA, Path]:
    ca = trustme.CA(organization_name=name)
    path = directory / f"{name}.pem"
    ca.cert_pem.write_to_path(path)
    return ca, path


def _leaf(directory: Path, name: str, issuer: trustme.CA, *identities: str) -> CertFiles:
    """A certificate for `identities` (the name itself when none: a client certificate)."""
    now = datetime.datetime.now(datetime.UTC)
    leaf = issuer.issue_cert(
        *(identities or (name,)),
        common_name=name,
        not_before=now - datetime.timedelta(minutes=5),  # tolerate a little clock skew
        not_after=now + VALIDITY,
    )
    files = CertFiles(directory / f"{name}.crt", directory / f"{name}.key")
    leaf.cert_chain_pems[0].write_to_path(files.cert)
    leaf.private_key_pem.write_to_path(files.key)
    files.key.chmod(0o600)
    return files


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    root, root_pem = _ca(directory, "recserve-test-ca")
    rogue, rogue_pem = _ca(directory, "rogue-ca")
    return Pki(
        ca=root_pem,
        server=_leaf(directory, "recserve-server", root, *SERVER_IDENTITIES),
        client=_leaf(directory, "recserve-gateway", root),
        rogue_ca=rogue_pem,
        rogue_client=_leaf(directory, "intruder", rogue),
    )
