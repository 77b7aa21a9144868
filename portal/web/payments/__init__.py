"""Online payments: pay pages, the gateway webhook, and the staff views of online payments."""
