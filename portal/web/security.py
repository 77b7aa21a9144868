"""Security headers on every response. No inline scripts or styles anywhere, so the CSP can be strict."""

from flask import Flask, request
from werkzeug.middleware.proxy_fix import ProxyFix

CSP = (
    "default-src 'self'; script-src 'self'{stripe_js}; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'{stripe_api}; frame-src 'self'{stripe_frames}; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)


def init_app(app: Flask) -> None:
    proxies = app.config.get("TRUSTED_PROXIES", 0)
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)
    stripe = bool(app.config.get("STRIPE_PUBLISHABLE_KEY"))
    policy = CSP.format(
        stripe_js=" https://js.stripe.com" if stripe else "",
        stripe_api=" https://api.stripe.com" if stripe else "",
        stripe_frames=" https://js.stripe.com https://hooks.stripe.com" if stripe else "",
    )
    https = app.config["PREFERRED_URL_SCHEME"] == "https"

    @app.after_request
    def _headers(response):
        h = response.headers
        h.setdefault("Content-Security-Policy", policy)
        h.setdefault("X-Frame-Options", "DENY")
        h.setdefault("X-Content-Type-Options", "nosniff")
        # Links carry tokens in the path: never leak them to another site through the Referer header.
        h.setdefault("Referrer-Policy", "no-referrer")
        h.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if https:
            h.setdefault("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
        if request.endpoint != "static":
            h.setdefault("Cache-Control", "no-store")  # billing pages must not linger in shared caches
        return response
