"""Autopay for client contacts: saved methods, the signed authorization, onboarding and campaign links."""
