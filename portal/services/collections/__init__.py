"""Collections: the receivables dashboard and forecast, the reminder schedule and its sends, promises to pay, the
call list, late fees and likely duplicate bills. Callers import the module they need; nothing is re-exported.
"""
