"""Autopay, enrollment side (issue 10): saved methods, signed authorizations, rules, onboarding, incentives,
adoption and the conversion campaign. The collection engine (``portal run-due``) lives in services/payments and
services/due.py and reads what these modules store: ``rules.rules_for``, ``methods.domain_methods``, and the
incentive hooks in ``incentives``.

Callers import the modules: ``from portal.services.autopay import methods, enrollment, rules ...``.
"""
