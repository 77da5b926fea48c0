"""``event_history``, per agreement: the event log tells one consistent story with no gaps.

Round ids run 1..``roundCount`` without a gap; a round opens only after the previous one ended (finalized or
voided); every commitment (single or anchored entry) falls in an opened round, before that round ended, from a
party of the agreement, at most once per partner and round; a round's status on-chain matches its events;
every finalized round with a payout total has the vault's ``Allocated`` with the same root and total in the
same transaction; claims are only for allocated rounds. Each round ran under the version of the terms in force
when it opened (the last ``AgreementActivated`` before it: a pending amendment changes nothing); each dispute
names an entry its party had in the round, each voiding follows a dispute, and each answer follows a dispute or
reveals early (before any dispute) an entry its party had. A round's closing snapshot (``EpsilonsAtClose``) and
restore (``VoidedRoundRestored``, once, of a voided round) are of rounds that opened.
"""

from __future__ import annotations

from ...chain.merkle import unpack_entries
from ...units import RoundStatus
from ..chain_view import ChainView, RoundRecord, digest_bytes
from ..model import EVENT_HISTORY, CheckResult

__all__ = ["check_event_history"]


def check_event_history(view: ChainView) -> list[CheckResult]:
    results = []
    ledger = view.deployment.ledger.functions
    for a in view.agreement_ids():
        problems: list[str] = []
        records = view.rounds(a)
        ids = [rec.round for rec in records]
        count = int(ledger.roundCount(a).call(block_identifier=view.block))
        if ids != list(range(1, count + 1)):
            problems.append(f"rounds opened {ids}, the ledger counts {count}")
        ended_at: dict[int, tuple[int, int]] = {}
        previous_end: tuple[int, int] | None = (0, 0)
        allocations = {(int(e.args["round"])): e for e in view.events("Allocated", agreement_id=a)}
        activations = [
            ((e.block_number, e.log_index), int(e.args["version"]))
            for e in view.events("AgreementActivated", agreement_id=a)
        ]
        for rec in records:
            opened_at = (rec.opened.block_number, rec.opened.log_index)
            in_force = [v for at, v in activations if at < opened_at]
            if not in_force or in_force[-1] != rec.version:
                problems.append(
                    f"round {rec.round} ran under version {rec.version}, not the version in force "
                    f"{in_force[-1] if in_force else None}"
                )
            if rec.round > 1 and (previous_end is None or opened_at < previous_end):
                problems.append(f"round {rec.round} opened before round {rec.round - 1} ended")
            end = rec.finalized or rec.voided
            end_at = (end.block_number, end.log_index) if end is not None else None
            if end_at is not None:
                ended_at[rec.round] = end_at
            previous_end = end_at
            expected_status = (
                RoundStatus.VOIDED if rec.voided else RoundStatus.FINALIZED if rec.finalized else RoundStatus.OPEN
            )
            if rec.status != expected_status:
                problems.append(f"round {rec.round}: status {rec.status} on-chain, its events say {expected_status}")
            parties = set(view.terms(a, rec.version).parties)
            seen: set[str] = set()
            partners = [(e.args["partner"], e) for e in rec.singles]
            for e in rec.batches:
                skipped = int(e.args.get("skipped", 0))  # entries of parties that had submitted: skipped on-chain
                partners += [
                    (view.party_at(a, i), e)
                    for k, (i, _) in enumerate(unpack_entries(digest_bytes(e.args["entries"])))
                    if not skipped >> k & 1
                ]
            for partner, e in partners:
                at = (e.block_number, e.log_index)
                if at < opened_at or (end_at is not None and at > end_at):
                    problems.append(f"round {rec.round}: {partner}'s commitment (tx {e.tx_hash}) is outside the round")
                if partner in seen:
                    problems.append(f"round {rec.round}: {partner} committed twice")
                if partner not in parties:
                    problems.append(f"round {rec.round}: {partner} is not a party of version {rec.version}")
                seen.add(partner)
            if rec.finalized is not None and int(rec.finalized.args["payoutTotal"]) > 0:
                alloc = allocations.get(rec.round)
                f = rec.finalized.args
                if (
                    alloc is None
                    or alloc.tx_hash != rec.finalized.tx_hash
                    or (alloc.args["root"], alloc.args["total"]) != (f["payoutRoot"], f["payoutTotal"])
                ):
                    problems.append(f"round {rec.round}: finalized without the matching allocation in the vault")
        for name in (
            "UpdateSubmitted",
            "BatchCommitted",
            "RoundFinalized",
            "RoundVoided",
            "EpsilonsAtClose",
            "VoidedRoundRestored",
        ):
            for e in view.events(name, agreement_id=a):
                if int(e.args["round"]) not in ids:
                    problems.append(f"{name} (tx {e.tx_hash}) for round {e.args['round']}, never opened")
        problems += _dispute_problems(view, a, records)
        problems += _restore_problems(view, a, records)
        for e in view.events("Claimed", agreement_id=a):
            if int(e.args["round"]) not in allocations:
                problems.append(f"claim (tx {e.tx_hash}) for round {e.args['round']}, which allocated nothing")
        message = "; ".join(problems) or (
            f"{len(ids)} round(s) opened in order, each commitment inside its round "
            "once per party, every payout allocated"
        )
        results.append(
            CheckResult(
                EVENT_HISTORY,
                not problems,
                message,
                a,
                None,
                None,
                None,
                {"block": view.block, "rounds": ids, "round_count": count, "events": len(view.events(agreement_id=a))},
            )
        )
    return results


def _dispute_problems(view: ChainView, a: int, records: list[RoundRecord]) -> list[str]:
    """Disputes name entries their party had in the round; answers and voidings follow a dispute."""
    problems = []
    entries = {rec.round: {p for e in rec.batches for p in view.batch_parties(a, e)} for rec in records}
    disputed = set()
    for e in view.events(["BatchEntryDisputed", "DisputeAnswered", "DisputedEntryVoided"], agreement_id=a):
        key = (int(e.args["round"]), e.args["party"])
        if e.event == "BatchEntryDisputed":
            if key[1] not in entries.get(key[0], set()):
                problems.append(f"round {key[0]}: {key[1]} disputed an entry it did not have (tx {e.tx_hash})")
            disputed.add(key)
        elif e.event == "DisputeAnswered" and key not in disputed and key[1] not in entries.get(key[0], set()):
            problems.append(
                f"round {key[0]}: {key[1]}'s commitment revealed for an entry it did not have (tx {e.tx_hash})"
            )
        elif e.event == "DisputedEntryVoided" and key not in disputed:
            problems.append(f"round {key[0]}: {e.event} of {key[1]} without a dispute (tx {e.tx_hash})")
    return problems


def _restore_problems(view: ChainView, a: int, records: list[RoundRecord]) -> list[str]:
    """A restore gives back a voided round's spend, once."""
    voided = {rec.round for rec in records if rec.voided is not None}
    problems, restored = [], set()
    for e in view.events("VoidedRoundRestored", agreement_id=a):
        r = int(e.args["round"])
        if r in restored or r not in voided:
            problems.append(f"round {r}: restored {'twice' if r in restored else 'but never voided'} (tx {e.tx_hash})")
        restored.add(r)
    return problems
