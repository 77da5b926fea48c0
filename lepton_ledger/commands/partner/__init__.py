"""``lepton-ledger partner ...``: a partner's steps, each signed with its own keystore key (``--key``).

register -> (coordinator approves) -> sign -> stake -> per round: train-and-submit (or, in batched mode,
train-and-sign, whose file the coordinator anchors) -> (coordinator closes) -> claim; status at any time.
The partner's privacy accountant persists between commands under
``<data dir>/accountants/<RoundLedger address>/<agreement>-<partner>.json``; the signed commitment file of
train-and-sign is documented in rounds/roles.py.

Relayed signature file (``sign --relay-to-file``), JSON: ``{"version": 1, "chain_id", "agreement_registry",
"agreement_id", "party", "deadline", "signature"}`` (0x-hex); ``coordinator relay-signature FILE`` sends it with
``AgreementRegistry.signBySig`` and pays the gas.
"""

from __future__ import annotations

from ..context import command_group
from .disputes import dispute, void_entry
from .membership import RELAY_FILE_VERSION, exit_, register, sign, stake, unstake
from .standing import claim, status
from .training import train_and_sign, train_and_submit

__all__ = ["RELAY_FILE_VERSION", "partner_app"]

partner_app = command_group(
    "A partner's steps: register, sign an agreement, stake, train and submit (or sign) a round's update, claim, "
    "status.",
    (
        ("register", register),
        ("sign", sign),
        ("stake", stake),
        ("train-and-submit", train_and_submit),
        ("train-and-sign", train_and_sign),
        ("claim", claim),
        ("exit", exit_),
        ("unstake", unstake),
        ("status", status),
        ("dispute", dispute),
        ("void-entry", void_entry),
    ),
)
