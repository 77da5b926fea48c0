"""Two processes of one partner on one outbox (a resumed run started while the first still runs): the update one
of them recorded first is the one both return, the bytes its put published."""

from __future__ import annotations

from typing import Any

from agreement_setup import NAMES, make_coordinator, make_partner, new_agreement, open_round, recipients

from lepton_ledger import fl
from lepton_ledger.rounds.outbox import Outbox
from lepton_ledger.rounds.partner import Partner, PreparedUpdate


def test_a_partner_beaten_to_recording_its_envelope_returns_the_one_recorded(world, executor):
    agreement_id = new_agreement(world)
    round_id, _ = open_round(world, make_coordinator(world, "twins"), agreement_id)
    first = make_partner(world, NAMES[0], agreement_id, executor)
    twin = Partner(  # the same partner in another process: its own objects, the same outbox file
        account=first.account,
        tx=first.tx,
        deployment=first.deployment,
        store=first.store,
        accountant=fl.PrivacyAccountant(partner=first.address, agreement=agreement_id, delta=1e-5, epsilon_cap=8.0),
        data=first.data,
        executor=executor,
        settings=first.settings,
        outbox=Outbox(first.outbox.path),
    )
    recorded: list[PreparedUpdate] = []

    def meanwhile(point: str, op: Any) -> None:  # the twin records and puts its envelope while the first trains
        if point == "train:done" and not recorded:
            recorded.append(twin.prepare_update(agreement_id, round_id, recipients(world)))

    first.checkpoint = meanwhile
    prepared = first.prepare_update(agreement_id, round_id, recipients(world))
    assert recorded and prepared.envelope == recorded[0].envelope == world["store"].get(prepared.envelope_cid)
    assert prepared.manifest_digest == recorded[0].manifest_digest
