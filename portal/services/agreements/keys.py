"""The two secrets that vouch for agreement evidence from outside the database, both kept in the instance folder
(``keys/``): the key that authenticates every chain head, and the certificate that PAdES-signs every signed PDF.

Both are created on first use. ``PORTAL_EVIDENCE_KEY`` overrides the chain key file (for installs whose instance
folder is not shared between nodes). Losing them does not lose evidence, but verification can then no longer tell
a genuine chain from one rewritten whole: back them up with the database, store them apart from it.
"""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path

from portal.gateways.pdf_signing import PdfSigner, write_once

from ..runtime import Runtime

FOLDER = "keys"
CHAIN_KEY_FILE = "evidence-chain.key"


def folder(rt: Runtime) -> Path:
    return Path(rt.instance_path) / FOLDER


def chain_key(rt: Runtime) -> bytes:
    configured = rt.config.get("EVIDENCE_KEY")
    if configured:
        return str(configured).encode("utf-8")
    return _key_file(folder(rt) / CHAIN_KEY_FILE)


@lru_cache(maxsize=8)
def _key_file(path: Path) -> bytes:
    return write_once(path, secrets.token_hex(32).encode("ascii")).strip()


def pdf_signer(rt: Runtime) -> PdfSigner:
    return _signer(folder(rt))


@lru_cache(maxsize=8)
def _signer(path: Path) -> PdfSigner:
    return PdfSigner(path)
