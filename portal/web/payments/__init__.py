"""Online payments: pay pages, the gateway webhook, and the staff views of online payments."""

# The autopay approval page adds its route to the payments blueprint (routes.bp) when the package loads.
from . import confirm  # noqa: E402,F401
