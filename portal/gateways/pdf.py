"""PDF rendering: Jinja HTML templates in templates/pdf/ turned into PDF by WeasyPrint.

WeasyPrint may load only the app's static files, uploaded logos and data: URLs, never the network.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit

from weasyprint import HTML
from weasyprint.urls import URLFetcher


class _LocalOnly(URLFetcher):
    def __init__(self, roots: list[Path]):
        super().__init__(allowed_protocols=("file", "data"))
        self.roots = roots

    def fetch(self, url, headers=None):
        if url.startswith("file:"):
            path = Path(unquote(urlsplit(url).path)).resolve()
            if not any(path.is_relative_to(root) for root in self.roots):
                raise ValueError(f"blocked resource in PDF: {url}")
        return super().fetch(url, headers)


class PdfRenderer:
    """templates/pdf/<template>.html to PDF bytes; only the app's static files and uploads may be loaded."""

    def __init__(self, *, render: Callable[..., str], static: Path, uploads: Path):
        self._render = render
        self.static = static.resolve()
        self.uploads = uploads.resolve()

    def render(self, template: str, **context) -> bytes:
        html = self._render(f"pdf/{template}.html", **context)
        return HTML(string=html, base_url=self.static.as_uri() + "/",
                    url_fetcher=_LocalOnly([self.static, self.uploads])).write_pdf()
