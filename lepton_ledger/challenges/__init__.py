"""What a party does with what an audit found: challenges of a partner's update and of the coordinator's results,
the arbiter's rulings and the slashing they lead to, and proofs that a batch entry was forged.

Modules: ``challenge`` (a partner-level challenge from a failed check: evidence document, raise, rule, read),
``results`` (the coordinator's results challenged in the results court), ``forgery`` (voiding a forged batch
entry), ``cli`` (``lepton-ledger challenge ...``). Above the audit (whose results they take as evidence); nothing
below imports them.
"""
