"""Certificates for the TLS/mTLS tests: a CA, a server and a client certificate it signs, and a
client certificate from another CA. Generated per test run with the openssl CLI (no extra Python
dependency), valid one day, never committed."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SERVER_SANS = "DNS:localhost,IP:127.0.0.1,IP:127.0.0.2,IP:127.0.0.3"


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


def available() -> bool:
    return shutil.which("openssl") is not None


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _key_args(key: Path) -> list[str]:
    return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key)]


def _ca(directory: Path, cn: str) -> CertFiles:
    files = CertFiles(directory / f"{cn}.pem", directory / f"{cn}.key")
    _openssl(
        "req",
        "-x509",
        *_key_args(files.key),
        "-out",
        str(files.cert),
        "-days",
        "1",
        "-subj",
        f"/CN={cn}",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )
    return files


def _leaf(directory: Path, cn: str, issuer: CertFiles, usage: str, sans: str | None) -> CertFiles:
    files = CertFiles(directory / f"{cn}.crt", directory / f"{cn}.key")
    csr = directory / f"{cn}.csr"
    _openssl("req", "-new", *_key_args(files.key), "-out", str(csr), "-subj", f"/CN={cn}")
    extensions = directory / f"{cn}.ext"
    lines = [
        "basicConstraints=critical,CA:FALSE",
        f"extendedKeyUsage={usage}",
        "keyUsage=critical,digitalSignature",
    ]
    if sans:
        lines.append(f"subjectAltName={sans}")
    extensions.write_text("\n".join(lines) + "\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(issuer.cert),
        "-CAkey",
        str(issuer.key),
        "-set_serial",
        str(secrets.randbits(63)),
        "-days",
        "1",
        "-sha256",
        "-extfile",
        str(extensions),
        "-out",
        str(files.cert),
    )
    files.key.chmod(0o600)
    return files


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    root = _ca(directory, "recserve-test-ca")
    rogue = _ca(directory, "rogue-ca")
    return Pki(
        ca=root.cert,
        server=_leaf(directory, "recserve-server", root, "serverAuth", SERVER_SANS),
        client=_leaf(directory, "recserve-gateway", root, "clientAuth", None),
        rogue_ca=rogue.cert,
        rogue_client=_leaf(directory, "intruder", rogue, "clientAuth", None),
    )
