"""Enforcing the signed terms: formal notices (remote disable, equipment recovery), the equipment register,
equipment orders with deposits, credit limits, one-off charge authorizations and deliverables released on payment.
One module per use case; the rules live in portal.domain (notices, charge_authorizations, deliverables, ...)."""
