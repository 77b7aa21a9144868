"""What services need from outside the database, handed to them as one explicit object.

Services never import Flask: the web layer builds one ``Runtime`` at startup (``portal/web/runtime.py``) from the
configuration and the real routes, and views, commands and tests pass it to the services that send email, build
links, render PDFs or call the payment gateway. Time still comes from ``portal.clock``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portal.gateways.email import Mailer
from portal.gateways.payments import PaymentGateway
from portal.gateways.pdf import PdfRenderer


@dataclass(frozen=True)
class Runtime:
    base_url: str  # the public address clients see, without a trailing slash
    secret_key: str  # signs emailed links
    instance_path: Path  # local data: uploads, keys
    url: Callable[..., str]  # url("endpoint", **values): the absolute address of a real route
    mailer: Mailer
    pdf: PdfRenderer
    gateway: PaymentGateway
    config: Mapping[str, Any]  # the remaining settings by their PORTAL_* name (SIGN_IN_LINK_MINUTES, ...)

    @property
    def uploads(self) -> Path:
        return self.instance_path / "uploads"
