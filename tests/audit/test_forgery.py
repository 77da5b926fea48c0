"""`lepton-ledger challenge prove-forgery`: a coordinator anchors a batch in which one partner's commitment is
signed by someone else; the audit fails batch_document, and the auditor voids the round on-chain from the CLI.
A round without forgery, or one already voided, is refused with a clear error and no transaction."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

from typer.testing import CliRunner

from lepton_ledger.audit import audit_workdir
from lepton_ledger.chain.anvil import Anvil, dev_account
from lepton_ledger.chain.deployment import Deployment, DevRoles
from lepton_ledger.chain.merkle import PositionalTree, commitment_leaf, pack_entries
from lepton_ledger.chain.state import AgreementState, Round, Terms
from lepton_ledger.chain.transactions import Transactor
from lepton_ledger.chain.typed_data import (
    UpdateCommitment,
    sign_digest,
    update_commitment_digest,
)
from lepton_ledger.commands.challenge import challenge_app
from lepton_ledger.rounds.report import publish
from lepton_ledger.storage.local import LocalStore
from lepton_ledger.units import RoundStatus

AGREEMENT = 1


def _anchor_forged_round(workdir) -> tuple[int, str]:
    """Round 3 on the folder's chain, batched: partner 1's commitment honest, partner 2's signed with partner 1's
    key; the coordinator anchors both (the contract does not check signatures in batches) with their document,
    and finalizes."""
    deployment = json.loads((workdir / "deployment.json").read_text())
    with Anvil(state_file=workdir / "chain-state.json", accounts=12) as w3:
        roles, partners = DevRoles.from_dev_keys(), [dev_account(10), dev_account(11)]
        tx = Transactor(w3, [*roles.accounts(), *partners])
        d = Deployment.at(w3, deployment["contracts"])
        coord = roles.coordinator.address
        terms = Terms.read(d.agreements.functions.terms(AGREEMENT))
        terms = replace(terms, max_rounds=terms.max_rounds + 1)  # one more round than the demo used
        tx.transact(d.agreements.functions.amend(AGREEMENT, terms.as_tuple()), coord)
        for account in partners:
            tx.transact(d.agreements.functions.sign(AGREEMENT), account.address)
        state = AgreementState.read(d.agreements.functions.agreementState(AGREEMENT))
        if state.active_version != state.version:  # the amendment is not in force yet
            tx.transact(d.agreements.functions.tryActivate(AGREEMENT), coord)
        deadline = w3.eth.get_block("latest")["timestamp"] + 3600
        receipt = tx.transact(d.ledger.functions.openRound(AGREEMENT, b"\x01" * 32, deadline, b"\x02" * 32), coord)
        (opened,) = d.ledger.events.RoundOpened().process_receipt(receipt)
        round_id = int(opened["args"]["round"])
        items, leaves, entries = [], [], []
        for position, account in enumerate(partners):
            _, index = d.agreements.functions.partyIndex(AGREEMENT, account.address).call()
            epsilon = int(d.ledger.functions.cumulativeEpsilon(AGREEMENT, account.address).call()) + 1_000_000
            c = UpdateCommitment(
                AGREEMENT,
                round_id,
                account.address,
                hashlib.sha256(b"env%d" % position).digest(),
                hashlib.sha256(b"man%d" % position).digest(),
                epsilon,
                100,
            )
            digest = update_commitment_digest(w3.eth.chain_id, d.ledger.address, c)
            signature = sign_digest(bytes(partners[0].key), digest)  # partner 2's is forged with partner 1's key
            leaves.append(commitment_leaf(digest, signature))
            entries.append((index, epsilon))
            items.append(
                {
                    "partyIndex": index,
                    "agreementId": AGREEMENT,
                    "round": round_id,
                    "partner": account.address,
                    "envelopeDigest": "0x" + c.envelope_digest.hex(),
                    "manifestDigest": "0x" + c.manifest_digest.hex(),
                    "cumulativeEpsilon": epsilon,
                    "sampleCount": 100,
                    "signature": "0x" + signature.hex(),
                    "envelopeCid": "",
                }
            )
        document = {
            "version": 1,
            "chain_id": w3.eth.chain_id,
            "ledger": d.ledger.address,
            "agreement_id": AGREEMENT,
            "round": round_id,
            "commitments": items,
        }
        _, document_digest = publish(
            LocalStore(workdir / "store", durable=False),
            json.dumps(document, sort_keys=True, separators=(",", ":")).encode(),
        )
        tx.transact(
            d.ledger.functions.commitBatch(
                AGREEMENT, round_id, PositionalTree(leaves).root, document_digest, pack_entries(entries)
            ),
            coord,
        )
        # Every party is in: the coordinator finalizes at once (digests of nothing, no payouts), and the round's
        # dispute window opens; the auditor has until it closes.
        tx.transact(
            d.ledger.functions.finalizeRound(AGREEMENT, round_id, b"\x03" * 32, b"\x04" * 32, bytes(32), 0), coord
        )
    return round_id, partners[1].address


def _run(*args: str):
    return CliRunner().invoke(challenge_app, list(args), catch_exceptions=False)


def test_a_forged_batch_commitment_is_found_and_voids_the_round(demo_batched, fresh_copy, tmp_path):
    workdir = fresh_copy(demo_batched)
    round_id, forged_partner = _anchor_forged_round(workdir)

    # The audit sees it (batch_document fails, naming the forged partner), and the CLI proves it on-chain.
    audit = audit_workdir(workdir, state_path=tmp_path / "state.sqlite")
    failed = [c for c in audit.failed if c.name == "batch_document"]
    assert [(c.round, c.partner) for c in failed] == [(round_id, forged_partner)]

    clean = _run("prove-forgery", "1", "1", "--workdir", str(workdir))
    assert clean.exit_code == 1 and "there is no forgery to prove" in clean.output

    proved = _run("prove-forgery", "1", str(round_id), "--workdir", str(workdir))
    assert proved.exit_code == 0, proved.output
    assert f"round {round_id} of agreement 1 voided: batch 0, position 1 ({forged_partner})" in proved.output
    assert "the signature recovers" in proved.output

    deployment = json.loads((workdir / "deployment.json").read_text())
    with Anvil(state_file=workdir / "chain-state.json") as w3:
        d = Deployment.at(w3, deployment["contracts"])
        assert Round.read(d.ledger.functions.round(AGREEMENT, round_id)).status is RoundStatus.VOIDED
        assert d.ledger.functions.openRoundOf(AGREEMENT).call() == 0
        voided = d.ledger.events.RoundVoided.get_logs(from_block=0)
        block = w3.eth.block_number

    again = _run("prove-forgery", "1", str(round_id), "--workdir", str(workdir))
    assert again.exit_code == 1 and again.output.startswith("error: ")
    with Anvil(state_file=workdir / "chain-state.json") as w3:
        assert w3.eth.block_number == block  # refused before anything was sent
    assert len(voided) == 1 and int(voided[0]["args"]["position"]) == 1

    # Audited again after the proof: the history accounts for the voided round and the books still balance.
    after = audit_workdir(workdir, state_path=tmp_path / "state-after.sqlite")
    by_name = {c.name: c for c in after.checks if c.round is None}
    assert by_name["event_history"].ok and by_name["vault_conserves"].ok, [c.to_dict() for c in after.failed]
    assert {c.round for c in after.failed} <= {round_id}  # rounds 1 and 2 stay green
