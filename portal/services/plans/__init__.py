"""Installment plans: the MSP's policy, offers and their negotiation, acceptance (a signed plan agreement or
promissory note), and collection (down payment, installments charged by `run-due`, reminders, default, payoff).

Callers import the module they need (``from portal.services.plans import offers``); nothing is re-exported here so
each module stays the one place its rule lives.
"""
