"""From a failed round-level audit check to the coordinator's slashed bond: challenges of a round's results.

The partner-level checks lead to ``RoundLedger.challenge`` (:mod:`lepton_ledger.challenges.challenge`). The four
checks that judge what the coordinator computed, or the rules it computed by, lead here, to ``ResultsCourt``:

========================  ===================  ================================================
audit check               ``ResultsKind``      what is wrong
========================  ===================  ================================================
``aggregate_recomputed``  ``Aggregate`` (0)    the aggregate is not the rule over the accepted updates
``scores_and_payouts``    ``Payouts`` (1)      the scores, payouts or payout root do not re-compute
``rejections_recheck``    ``Rejections`` (2)   an honest update was rejected
``rules_as_signed``       ``Rules`` (3)        the round ran by rules other than the signed terms document's,
                                               or that document is not produced (its digest in the evidence)
========================  ===================  ================================================

1. **raise** -- an auditor challenges a Finalized round before its claims open (``finalizedAt +
   disputeWindow``); the round's claims are blocked while the challenge is open. The contract holds one live
   challenge per round, so every failed round-level check of one round goes into one evidence document, and the
   challenge's kind is that of the first of them in the audit's order.
2. **rule** -- the arbiter named in the terms rules within the ruling window (the ledger's dispute window from
   the challenge). Upheld: the round's allocation is revoked and the whole bond of the coordinator who ran it is
   shared equally among the parties (the remainder to the first party). After the window anyone may lapse it.
3. **claim-bond** -- each party pulls its share.

Evidence document (canonical JSON, its CID digest on-chain, as for partner challenges)::

    {"kind": "lepton-ledger/results-evidence", "version": 1, "agreement_id": int, "round": int,
     "results_kind": "aggregate"|"payouts"|"rejections"|"rules", "checks": [<the failed checks as the audit wrote them>]}

Every step is simulated before anything is put or sent; a refusal is a :class:`ChallengeError` in words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from ..audit.model import AGGREGATE_RECOMPUTED, REJECTIONS_RECHECK, RULES_AS_SIGNED, SCORES_AND_PAYOUTS
from ..chain.deployment import Deployment
from ..chain.state import ResultsChallenge as ChainResultsChallenge
from ..chain.transactions import Transactor
from ..storage.store import Store
from ..units import ResultsKind
from .challenge import (
    ChallengeError,
    ChallengeTx,
    JsonRecord,
    _event,
    _sent,
    _simulate,
    canonical_json,
    read_numbered,
)

__all__ = [
    "RESULTS_CHECKS",
    "ResultsChallenge",
    "claim_bond_share",
    "lapse_results",
    "raise_results_challenges",
    "read_results_challenge",
    "results_evidence",
    "rule_results",
]

#: Audit check -> the results kind that disputes it (named in documents in lower case: "aggregate").
RESULTS_CHECKS = {
    AGGREGATE_RECOMPUTED: ResultsKind.AGGREGATE,
    SCORES_AND_PAYOUTS: ResultsKind.PAYOUTS,
    REJECTIONS_RECHECK: ResultsKind.REJECTIONS,
    RULES_AS_SIGNED: ResultsKind.RULES,
}
EVIDENCE_KIND = "lepton-ledger/results-evidence"
RULING_KIND = "lepton-ledger/results-ruling"


@dataclass(frozen=True)
class ResultsChallenge(JsonRecord):
    """``ResultsCourt.challengeOf(id)``, with status and kind by name."""

    challenge_id: int
    status: str
    kind: str
    round: int
    raised_at: int
    agreement_id: int
    challenger: str
    evidence_digest: bytes
    ruling_digest: bytes


def _is_uint(value: object, bits: int) -> TypeGuard[int]:
    """Whether `value` is a positive uintN as the contracts take it (a hostile file's may be anything)."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value < 2**bits


def results_evidence(
    audit: Mapping[str, Any], *, agreement_id: int | None = None, round_id: int | None = None
) -> list[tuple[int, int, ResultsKind, bytes]]:
    """The results challenges an audit calls for: one ``(agreement, round, kind, evidence document)`` per round
    with a failed round-level check (optionally only `agreement_id`'s `round_id`), in the audit's order.

    Raises:
        ChallengeError: the audit has no such failed check (the message says which checks lead here).
    """
    grouped: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for check in audit.get("checks", []):
        if not isinstance(check, dict) or check.get("ok") is not False:
            continue
        if not isinstance(check.get("name"), str) or check["name"] not in RESULTS_CHECKS:
            continue  # a hostile file's name may be a list or an object, which no dict lookup takes
        a, r = check.get("agreement_id"), check.get("round")
        if not (_is_uint(a, 256) and _is_uint(r, 64)):
            continue  # a round-level check always names its round, as the contracts take it; anything else is not ours
        if (agreement_id, round_id) != (None, None) and (a, r) != (agreement_id, round_id):
            continue
        grouped.setdefault((a, r), []).append(check)
    if not grouped:
        where = f" of round {round_id} of agreement {agreement_id}" if round_id is not None else ""
        raise ChallengeError(
            f"the audit has no failed {', '.join(RESULTS_CHECKS)} check{where}: nothing in the "
            "coordinator's results to challenge (a partner's check: --check N)"
        )
    out = []
    for (a, r), checks in grouped.items():
        kind = RESULTS_CHECKS[checks[0]["name"]]
        kind_name = kind.name.lower()
        document = canonical_json(
            {
                "kind": EVIDENCE_KIND,
                "version": 1,
                "agreement_id": a,
                "round": r,
                "results_kind": kind_name,
                "checks": checks,
            }
        )
        out.append((a, r, kind, document))
    return out


def read_results_challenge(deployment: Deployment, challenge_id: int) -> ResultsChallenge:
    """The on-chain record of results challenge `challenge_id`.

    Raises:
        ChallengeError: there is no such challenge.
    """
    c = read_numbered(deployment.court, ChainResultsChallenge, challenge_id, "results challenge", "the court")
    return ResultsChallenge(
        challenge_id=challenge_id,
        status=str(c.status),
        kind=c.kind.name.lower(),
        round=c.round,
        raised_at=c.raised_at,
        agreement_id=c.agreement_id,
        challenger=c.challenger,
        evidence_digest=c.evidence_digest,
        ruling_digest=c.ruling_digest,
    )


def raise_results_challenges(
    tx: Transactor, deployment: Deployment, store: Store, *, sender: str, wanted: Sequence[tuple[int, int, int, bytes]]
) -> list[ChallengeTx]:
    """Challenges the results of each ``(agreement, round, kind, evidence document)`` of `wanted` (as
    :func:`results_evidence` gives them), as `sender` (an auditor whose key `tx` holds), putting each evidence
    document to the store. Every challenge is simulated before the first is sent.

    Raises:
        ChallengeError: the court would refuse one of them (not an auditor, round not finalized, claims open,
            already challenged); nothing was put or sent.
    """
    from ..rounds.report import content_digest, publish

    calls = []
    for agreement_id, round_id, kind, document in wanted:
        digest = content_digest(document)
        call = deployment.court.functions.challengeResults(agreement_id, round_id, kind, digest)
        _simulate(call, sender, deployment, "only an open challenge can be raised")
        calls.append((agreement_id, round_id, kind, document, digest, call))
    sent = []
    for agreement_id, round_id, kind, document, digest, call in calls:
        cid, stored = publish(store, document)
        if stored != digest:
            raise ChallengeError(f"the store put the evidence as {cid}, whose digest is not the one computed")
        receipt = tx.transact(call, sender)
        args = _event(deployment.court, "ResultsChallengeRaised", receipt)
        tx_hash, block = _sent(receipt)
        sent.append(
            ChallengeTx(
                "raise-results",
                int(args["challengeId"]),
                tx_hash,
                block,
                {
                    "agreement_id": agreement_id,
                    "round": round_id,
                    "kind": ResultsKind(kind).name.lower(),
                    "evidence_cid": cid,
                    "evidence_digest": "0x" + digest.hex(),
                },
            )
        )
    return sent


def rule_results(
    tx: Transactor, deployment: Deployment, store: Store, *, sender: str, challenge_id: int, upheld: bool, reason: str
) -> ChallengeTx:
    """The agreement's arbiter `sender` rules on an open results challenge; the ruling document goes to the
    store and its digest on-chain. Upheld: the round's payouts are revoked and the coordinator's bond is
    shared among the parties.

    Raises:
        ChallengeError: no such challenge, it is not Open, the ruling window closed, `sender` is not the
            arbiter, or `reason` is empty.
    """
    from ..rounds.report import content_digest, publish

    if not reason.strip():
        raise ChallengeError("a ruling needs a reason (--reason): it is published with the ruling digest")
    record = read_results_challenge(deployment, challenge_id)
    document = canonical_json(
        {
            "kind": RULING_KIND,
            "version": 1,
            "challenge_id": challenge_id,
            "upheld": upheld,
            "reason": reason,
            "evidence_digest": "0x" + record.evidence_digest.hex(),
        }
    )
    digest = content_digest(document)
    call = deployment.court.functions.ruleResults(challenge_id, upheld, digest)
    _simulate(call, sender, deployment, "only an Open challenge can be ruled on")
    cid, _ = publish(store, document)
    receipt = tx.transact(call, sender)
    details: dict[str, Any] = {"upheld": upheld, "ruling_cid": cid, "ruling_digest": "0x" + digest.hex()}
    if upheld:
        slashed = _event(deployment.court, "BondSlashed", receipt)
        details.update(coordinator=slashed["coordinator"], amount=str(slashed["amount"]), share=str(slashed["share"]))
    tx_hash, block = _sent(receipt)
    return ChallengeTx("rule", challenge_id, tx_hash, block, details)


def lapse_results(tx: Transactor, deployment: Deployment, *, sender: str, challenge_id: int) -> ChallengeTx:
    """Dismisses an open results challenge whose ruling window ended without a ruling. Anyone may send it.

    Raises:
        ChallengeError: no such challenge, it is not Open, or its ruling window still runs.
    """
    read_results_challenge(deployment, challenge_id)
    call = deployment.court.functions.lapseResults(challenge_id)
    _simulate(call, sender, deployment, "only an Open challenge can lapse")
    tx_hash, block = _sent(tx.transact(call, sender))
    return ChallengeTx("lapse", challenge_id, tx_hash, block)


def claim_bond_share(tx: Transactor, deployment: Deployment, *, sender: str, agreement_id: int) -> ChallengeTx:
    """The party `sender` takes its share of the coordinator bonds slashed in `agreement_id`.

    Raises:
        ChallengeError: an id the contract cannot take, `sender` is not a party, or nothing is owed to it.
    """
    if not 1 <= agreement_id < 2**256:  # refused here, not by the ABI encoder
        raise ChallengeError(f"agreement ids run from 1 to 2^256 - 1, not {agreement_id}")
    call = deployment.court.functions.claimBondShare(agreement_id)
    _simulate(call, sender, deployment, "")
    receipt = tx.transact(call, sender)
    args = _event(deployment.court, "BondShareClaimed", receipt)
    tx_hash, block = _sent(receipt)
    return ChallengeTx(
        "claim-bond",
        None,
        tx_hash,
        block,
        {"agreement_id": agreement_id, "party": args["party"], "amount": str(args["amount"])},
    )
