"""PDF rendering: Jinja HTML templates in templates/pdf/ turned into PDF by WeasyPrint.

WeasyPrint may load only the app's static files, uploaded logos and data: URLs, never the network.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlsplit


@cache
def _weasyprint():
    """WeasyPrint and the local-only fetcher, imported on the first PDF rather than with the app: ~30 MB and most
    of the start-up time that the CLI jobs (import, run-due) and a worker that never renders do not need."""
    from weasyprint import HTML
    from weasyprint.urls import URLFetcher

    class LocalOnly(URLFetcher):
        def __init__(self, roots: list[Path]):
            super().__init__(allowed_protocols=("file", "data"))
            self.roots = roots

        def fetch(self, url, headers=None):
            if url.startswith("file:"):
                path = Path(unquote(urlsplit(url).path)).resolve()
                if not any(path.is_relative_to(root) for root in self.roots):
                    raise ValueError(f"blocked resource in PDF: {url}")
            return super().fetch(url, headers)

    return HTML, LocalOnly


class PdfRenderer:
    """templates/pdf/<template>.html to PDF bytes; only the app's static files and uploads may be loaded."""

    def __init__(self, *, render: Callable[..., str], static: Path, uploads: Path):
        self._render = render
        self.static = static.resolve()
        self.uploads = uploads.resolve()

    def render(self, template: str, **context) -> bytes:
        html = self._render(f"pdf/{template}.html", **context)
        HTML, LocalOnly = _weasyprint()  # noqa: N806 - the classes
        return HTML(string=html, base_url=self.static.as_uri() + "/",
                    url_fetcher=LocalOnly([self.static, self.uploads])).write_pdf()
