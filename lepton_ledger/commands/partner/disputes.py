"""``partner dispute|void-entry``: a partner disputes a batch entry it never signed; an unanswered dispute voids
that entry (chain/disputes.py)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ...chain.state import EntryDispute
from ...units import (
    EPSILON_DECIMALS,
    DisputeStatus,
)
from ..context import (
    AgreementArg,
    DeploymentOpt,
    IpfsOpt,
    KeyOpt,
    RoundArg,
    RpcUrlOpt,
    fixed_point,
    open_session,
    parse_address,
    reports_errors,
    require,
    utc,
)


def _answerable(s: Any, entry: Any) -> bool:
    """Whether the coordinator can answer a dispute of `entry`: the batch document in the store recomputes the
    anchored root and holds, at the entry's position, a commitment of --key's with the entry's epsilon and
    --key's valid signature. Without such a document nothing is proven (a coordinator may withhold it)."""
    from ...chain.disputes import DisputeError, DisputeRecord, answer_for
    from ...chain.typed_data import UpdateCommitment, update_commitment_digest
    from ...protocol.signatures import is_valid_signature_now

    record = DisputeRecord(
        entry.agreement_id, entry.round, s.address, "None", entry.batch_index, entry.position, entry.epsilon, 0
    )
    try:
        _, commitment, signature = answer_for(s.deployment, s.store, record)
    except DisputeError:
        return False
    c = UpdateCommitment(*commitment)
    digest = update_commitment_digest(s.w3.eth.chain_id, s.deployment.ledger.address, c)
    return c.cumulative_epsilon == entry.epsilon and is_valid_signature_now(s.w3, s.address, digest, signature)


@reports_errors
def dispute(
    agreement: AgreementArg,
    round: RoundArg,
    key: KeyOpt,
    force: Annotated[bool, typer.Option(help="Dispute even an entry that is what --key signed.")] = False,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    ipfs: IpfsOpt = None,
) -> None:
    """Dispute --key's entry in a batch the coordinator anchored for ROUND: for a commitment it never signed.

    Finds the entry in the round's BatchCommitted events (the batch document is not needed: a coordinator may
    withhold it) and sends RoundLedger.disputeBatchEntry(evidence) from --key. The coordinator must then reveal
    the signed commitment within the dispute window; if it does not, `partner void-entry` voids that entry alone
    and restores its budget. Refused when the batch document in the store holds that very commitment with --key's
    signature (the coordinator can answer), unless --force.
    """
    from web3.logs import DISCARD

    from ...chain import disputes

    with open_session(rpc_url=rpc_url, deployment=deployment, key=key, ipfs=ipfs) as s:
        s.require_party(agreement, s.address)
        s.require_round(agreement, round)
        entry = disputes.entry_of(s.deployment, agreement, round, s.address)
        require(
            entry is not None,
            f"{s.address} has no entry in the batches anchored for round {round} of "
            f"agreement {agreement}: nothing to dispute",
        )
        status = EntryDispute.read(s.deployment.ledger.functions.entryDispute(agreement, round, s.address)).status
        require(
            status is DisputeStatus.NONE,
            f"{s.address}'s entry in round {round} of agreement {agreement} was already disputed (status {status})",
        )
        require(
            force or not _answerable(s, entry),
            f"{s.address} signed this commitment (epsilon {fixed_point(entry.epsilon, EPSILON_DECIMALS)}) for "
            f"round {round}: the entry is honest and the coordinator can answer a dispute; pass --force to "
            "dispute it anyway",
        )
        receipt = s.tx.transact(s.deployment.ledger.functions.disputeBatchEntry(entry.evidence()), s.address)
        (event,) = s.deployment.ledger.events.BatchEntryDisputed().process_receipt(receipt, errors=DISCARD)
    answer_by = int(event["args"]["answerBy"])
    typer.echo(
        f"disputed the entry of {s.address} in round {round} of agreement {agreement} (batch "
        f"{entry.batch_index}, position {entry.position}, epsilon "
        f"{fixed_point(entry.epsilon, EPSILON_DECIMALS)}); the "
        f"coordinator must answer by {utc(answer_by)}, then: lepton-ledger partner void-entry "
        f"{agreement} {round}"
    )


@reports_errors
def void_entry(
    agreement: AgreementArg,
    round: RoundArg,
    key: KeyOpt,
    party: Annotated[str | None, typer.Option(help="Whose disputed entry; default: --key's address.")] = None,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
) -> None:
    """Void a disputed batch entry the coordinator did not answer in time: that entry alone is removed (the round
    and its payouts stand) and what it spent is taken off the party's epsilon.

    Reads the round's EpsilonsAtOpen event and sends RoundLedger.voidDisputedEntry(agreement, round, party,
    words) from --key (anyone may send it). Refused while a later round of the agreement is open.
    """
    from web3.logs import DISCARD

    from ...chain import disputes

    with open_session(rpc_url=rpc_url, deployment=deployment, key=key) as s:
        who = parse_address(party, "--party") if party else s.address
        s.require_round(agreement, round)
        d = EntryDispute.read(s.deployment.ledger.functions.entryDispute(agreement, round, who))
        status, answer_by = d.status, d.answer_by
        require(
            status is not DisputeStatus.NONE, f"{who} has no disputed entry in round {round} of agreement {agreement}"
        )
        require(
            status is not DisputeStatus.ANSWERED,
            f"the coordinator answered the dispute of {who} in round "
            f"{round} with its signed commitment: the entry stands",
        )
        require(status is DisputeStatus.OPEN, f"the entry of {who} in round {round} is already voided")
        now = int(s.w3.eth.get_block("pending")["timestamp"])
        require(
            now > answer_by,
            f"the coordinator may answer the dispute of {who} until {utc(answer_by)}; it can be voided after that",
        )
        open_round = int(s.deployment.ledger.functions.openRoundOf(agreement).call())
        require(
            open_round in (0, round),
            f"round {open_round} of agreement {agreement} is open: the entry of {who} "
            f"in round {round} can be voided once it closes",
        )
        words = disputes.words_at_open(s.deployment, agreement, round)
        receipt = s.tx.transact(
            s.deployment.ledger.functions.voidDisputedEntry(agreement, round, who, words), s.address
        )
        (event,) = s.deployment.ledger.events.DisputedEntryVoided().process_receipt(receipt, errors=DISCARD)
    restored = int(event["args"]["restoredEpsilon"])
    typer.echo(
        f"voided the entry of {who} in round {round} of agreement {agreement} (the round stands): its "
        f"epsilon is back to {fixed_point(restored, EPSILON_DECIMALS)}"
    )
