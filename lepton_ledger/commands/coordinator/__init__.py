"""``lepton-ledger coordinator ...``: the coordinator's steps, signed with its keystore key (``--key``).

approve partners -> propose an agreement -> (relay signatures) -> fund -> per round: open -> (partners submit,
or sign commitments that ``anchor`` commits in one batch) -> close. The terms document (task, model, max norm)
is put to the store with the proposal (rounds/roles.py); the event index of ``close`` lives in
``<data dir>/events/<RoundLedger address>/events.sqlite``.

Terms file (``propose --terms-file``): the terms JSON of rounds/coordinator_steps.py, every member optional;
the command-line options override it. The steps the ledger service takes too (terms, payment, opening a round)
are that module's.
"""

from __future__ import annotations

from ..context import command_group
from .agreements import approve, bond, fund, propose, relay_signature
from .rounds import anchor, answer_disputes, close, open_

__all__ = ["coordinator_app"]

coordinator_app = command_group(
    "The coordinator's steps: approve partners, propose and fund agreements, open, anchor and close rounds.",
    (
        ("approve", approve),
        ("propose", propose),
        ("relay-signature", relay_signature),
        ("fund", fund),
        ("bond", bond),
        ("anchor", anchor),
        ("open", open_),
        ("close", close),
        ("answer-disputes", answer_disputes),
    ),
)
