"""PAdES signatures on signed agreements, made with this install's own certificate (pyHanko).

The certificate and its private key are generated on first use and kept in the instance folder, never in the
database: whoever can only write the database cannot re-sign an altered PDF. Any PDF reader (or pyHanko) then
shows whether the file changed since the portal signed it. The certificate is self-signed, so a reader calls it
"unknown signer" until someone trusts it; what matters is that it is this install's (compare the fingerprint).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from portal.clock import now

KEY_FILE = "agreement-signing.pem"  # private key and certificate, one file so the pair is written at once
# RFC 5280's "no well-defined expiration": the certificate must outlive every agreement it signs, and it is
# trusted by its fingerprint, not by its dates.
NO_EXPIRY = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


def write_once(path: Path, data: bytes) -> bytes:
    """Write ``data`` to ``path`` unless it already exists, readable by the owner only; return what is there.

    Several processes may start at once: each writes a private temporary file and links it into place, which
    succeeds for exactly one of them; the others read the winner's file. A half-written file is never seen."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return path.read_bytes()
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):  # another process won: read its file below
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_bytes()


def _new_identity(common_name: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "MSP payment portal (this install)")])
    start = now() - timedelta(days=1)  # a day's slack for a server clock that is a little behind
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(NO_EXPIRY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
            + cert.public_bytes(serialization.Encoding.PEM))


class PdfSigner:
    """Signs PDFs with the install's certificate (created on first use in ``folder``) and checks them."""

    def __init__(self, folder: Path, *, common_name: str = "Agreement signing"):
        pem = write_once(Path(folder) / KEY_FILE, _new_identity(common_name))
        key = serialization.load_pem_private_key(pem, password=None)
        cert = x509.load_pem_x509_certificate(pem)
        self.certificate_der = cert.public_bytes(serialization.Encoding.DER)
        self.certificate_pem = cert.public_bytes(serialization.Encoding.PEM)
        self._cert = asn1_x509.Certificate.load(self.certificate_der)
        self._key = asn1_keys.PrivateKeyInfo.load(key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the certificate: how a person recognises this install's signature in a PDF reader."""
        return hashlib.sha256(self.certificate_der).hexdigest()

    def sign(self, pdf: bytes, *, reason: str, location: str = "") -> bytes:
        """The same PDF with a PAdES baseline signature over all of it appended (an incremental update)."""
        # pyHanko is imported when a PDF is signed or checked, not with the app: ~18 MB that the CLI jobs (import,
        # run-due) and a worker that never signs do not need
        from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
        from pyhanko.sign import signers
        from pyhanko.sign.fields import SigSeedSubFilter
        from pyhanko_certvalidator.registry import SimpleCertificateStore

        signer = signers.SimpleSigner(signing_cert=self._cert, signing_key=self._key,
                                      cert_registry=SimpleCertificateStore.from_certs([self._cert]))
        meta = signers.PdfSignatureMetadata(field_name="PortalSignature", md_algorithm="sha256", reason=reason,
                                            location=location or None, subfilter=SigSeedSubFilter.PADES)
        out = io.BytesIO()
        signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)), meta, signer=signer, output=out)
        return out.getvalue()

    def check(self, pdf: bytes) -> bool:
        """True when ``pdf`` carries a signature by this install's certificate that covers the whole file and
        still matches it (pyHanko's own validation, this certificate as the only trust root)."""
        from pyhanko.pdf_utils.reader import PdfFileReader
        from pyhanko.sign.validation import validate_pdf_signature
        from pyhanko_certvalidator import ValidationContext

        try:
            reader = PdfFileReader(io.BytesIO(pdf))
            signatures = reader.embedded_signatures
            if len(signatures) != 1:
                return False
            status = validate_pdf_signature(signatures[0], ValidationContext(trust_roots=[self._cert]))
        except Exception:  # noqa: BLE001 - anything unreadable is simply not a valid signed copy
            return False
        return bool(status.intact and status.valid and status.trusted and status.bottom_line
                    and status.coverage is not None and status.coverage.name == "ENTIRE_FILE")
