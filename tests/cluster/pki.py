"""Certificates and keys for a throwaway control plane on loopback."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Key = ec.EllipticCurvePrivateKey

SERVER_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    ca: Pair
    apiserver: Pair
    service_account_key: Path
    service_account_pub: Path
    root: Path

    def client(self, user: str, groups: tuple[str, ...] = ()) -> Pair:
        return _client_pair(self, user, groups)

    def server(self, name: str, ips: tuple[str, ...], dns: tuple[str, ...] = ()) -> Pair:
        """A serving certificate (e.g. a kubelet's) for these addresses, signed by the CA."""
        ca_cert = x509.load_pem_x509_certificate(self.ca.cert.read_bytes())
        ca_key = serialization.load_pem_private_key(self.ca.key.read_bytes(), password=None)
        assert isinstance(ca_key, Key)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _server_certificate(key, ca_cert, ca_key, name, dns=dns, ips=ips)
        return _write(self.root / f"{name.replace(':', '-')}-serving", cert, key)


def create_pki(root: Path, service_ip: str, addresses: tuple[str, ...] = ("127.0.0.1",)) -> Pki:
    root.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _ca_certificate(ca_key)
    ca = _write(root / "ca", ca_cert, ca_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    ips = tuple(dict.fromkeys(("127.0.0.1", "::1", service_ip, *addresses)))
    cert = _server_certificate(
        server_key, ca_cert, ca_key, "kube-apiserver", dns=SERVER_NAMES, ips=ips
    )
    server = _write(root / "apiserver", cert, server_key)
    sa_key, sa_pub = _service_account_keys(root)
    return Pki(ca, server, sa_key, sa_pub, root)


def _client_pair(pki: Pki, user: str, groups: tuple[str, ...]) -> Pair:
    ca_cert = x509.load_pem_x509_certificate(pki.ca.cert.read_bytes())
    ca_key = serialization.load_pem_private_key(pki.ca.key.read_bytes(), password=None)
    assert isinstance(ca_key, Key)
    key = ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, user)]
    attrs += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
    builder = _leaf(x509.Name(attrs), key, ca_cert).add_extension(
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
    )
    return _write(pki.root / user.replace(":", "-"), builder.sign(ca_key, hashes.SHA256()), key)


def _ca_certificate(key: Key) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mlops-test-ca")])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )


def _server_certificate(
    key: Key,
    ca_cert: x509.Certificate,
    ca_key: Key,
    common_name: str,
    *,
    dns: tuple[str, ...],
    ips: tuple[str, ...],
) -> x509.Certificate:
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return (
        _leaf(subject, key, ca_cert)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _leaf(subject: x509.Name, key: Key, ca_cert: x509.Certificate) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )


def _service_account_keys(root: Path) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_path, pub_path = root / "sa.key", root / "sa.pub"
    key_path.write_bytes(_private_pem(key))
    pub_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    key_path.chmod(0o600)
    return key_path, pub_path


def _write(stem: Path, cert: x509.Certificate, key: Key) -> Pair:
    pair = Pair(stem.with_suffix(".crt"), stem.with_suffix(".key"))
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(_private_pem(key))
    pair.key.chmod(0o600)
    return pair


def _private_pem(key: Key | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
