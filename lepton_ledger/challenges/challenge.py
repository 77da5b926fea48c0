"""From a failed audit check to a slashed stake: the challenge and slashing flow of the contracts.

The flow, and who may do each step (RoundLedger, RewardVault):

1. **raise** -- an auditor (``AUDITOR_ROLE``) calls ``RoundLedger.challenge(agreementId, round, partner,
   evidenceDigest)`` while the round is open or within its dispute window (``[finalizedAt, finalizedAt +
   disputeWindow)``), against a partner that committed an update in it, unless a challenge of that update is
   pending, upheld or executed. The partner's stake and its reward for the round are frozen from then on.
2. **resolve** -- the agreement's arbiter (named in the terms every party signed; no global role) rules on an
   Open challenge: upheld or dismissed, committing to a ruling document by its digest. A dismissed update may be challenged again.
3. **slash** -- anyone, once the challenge is Upheld and the round's dispute window has ended:
   ``RewardVault.slash(challengeId)`` sends the partner's whole stake in the agreement to the slash recipient
   fixed at deployment, and marks the challenge Executed.
4. **forfeit** -- anyone, after the slash, when the round paid the partner something:
   ``RewardVault.forfeitReward(challengeId, amount, proof)`` sends that reward to the slash recipient. The
   amount and Merkle proof are rebuilt from the round report in the store, checked against the payout root.

Documents put to the store (the bytes32 on-chain is the CID's sha2-256 digest, as for every round artifact:
:mod:`lepton_ledger.protocol.addressing`):

- evidence: the canonical JSON (sorted keys, no spaces, ASCII, no NaN) of the failed check exactly as the audit
  wrote it (``{"name", "ok", "agreement_id", "round", "partner", "cid", "message", "evidence"}``), so anyone
  holding the audit's JSON recomputes the ``evidenceDigest``; or any JSON object given explicitly, same encoding.
- ruling: canonical JSON of ``{"kind": "lepton-ledger/challenge-ruling", "version": 1, "challenge_id": int,
  "upheld": bool, "reason": str, "evidence_digest": "0x..."}``.

Every step is simulated (``eth_call``) before anything is put or sent, and a refusal is a
:class:`ChallengeError` that says, in words, why (the round's window closed at which time, which challenge
already holds the update, ...): a refused step changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from web3.contract import Contract

from ..chain.deployment import Deployment
from ..chain.state import ChainStruct, Challenge, Round
from ..chain.transactions import Transactor
from ..errors import ContractReverted, LeptonError
from ..protocol.jsonio import load_json, read_bounded
from ..storage.store import Store
from ..units import ChallengeStatus, ResultsChallengeStatus, RoundStatus

__all__ = [
    "ChallengeError",
    "ChallengeRecord",
    "ChallengeTx",
    "JsonRecord",
    "canonical_json",
    "challenge_input",
    "challenges",
    "failed_check",
    "forfeit_reward",
    "load_audit",
    "raise_challenge",
    "read_challenge",
    "read_numbered",
    "resolve_challenge",
    "ruling_document",
    "slash",
]

S = TypeVar("S", bound=ChainStruct)

ADMIN_ROLE = bytes(32)  # LeptonRoles.ADMIN: OpenZeppelin's DEFAULT_ADMIN_ROLE
RULING_KIND = "lepton-ledger/challenge-ruling"
_RESULTS_CHECKS = ("aggregate_recomputed", "scores_and_payouts", "rejections_recheck", "rules_as_signed")  # results.py
_NEVER = 2**256 - 1  # markChallengeExecuted's "window end" while the round is still open


class ChallengeError(LeptonError, ValueError):
    """A challenge step cannot go ahead (bad input, or the contracts would refuse it); nothing was put or sent."""


class JsonRecord:
    """A record (a dataclass) whose JSON form is its fields in order, bytes as 0x-hex."""

    def to_dict(self) -> dict[str, Any]:
        return {k: "0x" + v.hex() if isinstance(v, bytes) else v for k, v in vars(self).items()}


@dataclass(frozen=True)
class ChallengeRecord(JsonRecord):
    """``RoundLedger.challengeOf(id)``, with the status by name."""

    challenge_id: int
    status: str
    agreement_id: int
    round: int
    partner: str
    challenger: str
    raised_at: int
    evidence_digest: bytes
    ruling_digest: bytes


@dataclass(frozen=True)
class ChallengeTx:
    """One step that was sent: which, for which challenge, its transaction, and what it did (``details``:
    evidence or ruling CID and digest, amount and recipient of a slash or forfeit)."""

    action: str
    challenge_id: int | None  # None for a forgery proof (it voids the round, no challenge is involved)
    tx_hash: str
    block: int
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "challenge_id": self.challenge_id,
            "tx_hash": self.tx_hash,
            "block": self.block,
            **self.details,
        }


# -- documents -------------------------------------------------------------------------------------------------


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, ASCII, no NaN/Infinity: the bytes whose CID digest goes on-chain.

    Raises:
        ChallengeError: `value` holds something JSON cannot carry (a NaN, bytes, an object).
    """
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise ChallengeError(f"the evidence is not plain JSON: {exc}") from None


def ruling_document(challenge_id: int, *, upheld: bool, reason: str, evidence_digest: bytes) -> bytes:
    return canonical_json(
        {
            "kind": RULING_KIND,
            "version": 1,
            "challenge_id": challenge_id,
            "upheld": upheld,
            "reason": reason,
            "evidence_digest": "0x" + evidence_digest.hex(),
        }
    )


AUDIT_FILE_BYTES = 256 << 20  # an audit of thousands of rounds; the JSON reader refuses more before parsing


def load_audit(path: str | Path) -> dict[str, Any]:
    """The audit result written by ``lepton-ledger audit --json-out FILE``.

    Raises:
        ChallengeError: the file is missing, not JSON, or has no list of checks.
    """
    path = Path(path)
    try:
        document = load_json(
            read_bounded(path, AUDIT_FILE_BYTES), what=f"audit file {path}", max_bytes=AUDIT_FILE_BYTES
        )
    except FileNotFoundError:
        raise ChallengeError(
            f"no audit file at {path} (write one with `lepton-ledger audit --json-out FILE`)"
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ChallengeError(f"audit file {path} is not valid JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("checks"), list):
        raise ChallengeError(f'audit file {path} has no "checks" list: is it the output of `audit --json-out`?')
    return document


def failed_check(result: Mapping[str, Any], index: int) -> dict[str, Any]:
    """Check `index` of an audit result, which must have failed and name the agreement, round and partner.

    Raises:
        ChallengeError: no such check, the check passed, or it does not name one partner's update.
    """
    checks = result.get("checks")
    if not isinstance(checks, list):
        raise ChallengeError('the audit result has no "checks" list')
    if not 0 <= index < len(checks):
        span = f"0 to {len(checks) - 1}" if checks else "none"
        raise ChallengeError(f"there is no check {index}: the audit has {len(checks)} checks (indexes {span})")
    check = checks[index]
    if not isinstance(check, dict):
        raise ChallengeError(f"check {index} is not an object")
    label = f"check {index} ({check.get('name', '?')})"
    if check.get("ok") is True:
        raise ChallengeError(f"{label} passed: only a failed check can be turned into a challenge")
    if check.get("ok") is not False:
        raise ChallengeError(f'{label} has no pass/fail ("ok": true or false): is this an audit\'s check?')
    for key, kind in (("agreement_id", int), ("round", int), ("partner", str)):
        value = check.get(key)
        if key == "partner" and value is None and check.get("name") in _RESULTS_CHECKS:
            raise ChallengeError(
                f"{label} names no partner: it judges the coordinator's results, which are "
                "challenged with `challenge raise --from-audit FILE` alone (--agreement and --round "
                "pick one round)"
            )
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ChallengeError(
                f"{label} names no {key.replace('_id', '')}: a challenge is against one partner's update in one "
                "round, and this failure is not tied to one (pass --agreement, --round, --partner and --evidence "
                "to challenge an update yourself)"
            )
    return check


# -- reading the ledger ----------------------------------------------------------------------------------------


def read_numbered(contract: Contract, struct: type[S], challenge_id: int, what: str, holder: str) -> S:
    """Challenge `challenge_id` of `contract` as `struct`: the ledger's and the court's challenges are numbered
    from 1 to ``challengeCount()`` and read by ``challengeOf``.

    Raises:
        ChallengeError: there is no such challenge (naming `what` and the ids `holder` has).
    """
    count = int(contract.functions.challengeCount().call())
    if not 1 <= challenge_id <= count:
        held = f"{holder} has {count} (ids 1 to {count})" if count else "none was ever raised"
        raise ChallengeError(f"there is no {what} {challenge_id}: {held}")
    return struct.read(contract.functions.challengeOf(challenge_id))


def read_challenge(deployment: Deployment, challenge_id: int) -> ChallengeRecord:
    """The on-chain record of challenge `challenge_id`.

    Raises:
        ChallengeError: there is no such challenge.
    """
    c = read_numbered(deployment.ledger, Challenge, challenge_id, "challenge", "the ledger")
    return ChallengeRecord(
        challenge_id=challenge_id,
        status=str(c.status),
        round=c.round,
        raised_at=c.raised_at,
        agreement_id=c.agreement_id,
        partner=c.partner,
        challenger=c.challenger,
        evidence_digest=c.evidence_digest,
        ruling_digest=c.ruling_digest,
    )


def challenges(deployment: Deployment) -> list[ChallengeRecord]:
    """Every challenge raised on this ledger, oldest first."""
    count = int(deployment.ledger.functions.challengeCount().call())
    return [read_challenge(deployment, i) for i in range(1, count + 1)]


def _latest_challenge_of(
    deployment: Deployment, agreement_id: int, round_id: int, partner: str
) -> ChallengeRecord | None:
    # Challenges are few; walking them newest first avoids an unbounded eth_getLogs on a long-lived chain.
    for i in range(int(deployment.ledger.functions.challengeCount().call()), 0, -1):
        record = read_challenge(deployment, i)
        if (record.agreement_id, record.round, record.partner.lower()) == (agreement_id, round_id, partner.lower()):
            return record
    return None


def _now(deployment: Deployment) -> int:
    return int(deployment.ledger.w3.eth.get_block("latest")["timestamp"])


def _window_end(deployment: Deployment, agreement_id: int, round_id: int) -> tuple[str, int | None]:
    """The round's status and the end of its dispute window (None while it is open)."""
    r = Round.read(deployment.ledger.functions.round(agreement_id, round_id))
    if r.status is not RoundStatus.FINALIZED:
        return str(r.status), None
    return str(r.status), r.finalized_at + int(deployment.ledger.functions.disputeWindow().call())


# -- turning a refusal into a sentence ---------------------------------------------------------------------------


def _explain(exc: ContractReverted, deployment: Deployment, what: str) -> ChallengeError:
    # The error's arguments as the contract's ABI decoded them: a uintN is an int, an address a str.
    a = cast(dict[str, Any], exc.args_by_name)
    name = exc.error
    if name in ("RoundLedgerNotAuditor", "ResultsCourtNotAuditor"):
        text = f"{a['account']} does not hold the auditor role: only an auditor may raise a challenge"
    elif name in ("RoundLedgerNotArbiter", "ResultsCourtNotArbiter"):
        text = (
            f"{a['account']} is not the arbiter of agreement {a['agreementId']}: only the arbiter named in its "
            "terms may resolve a challenge"
        )
    elif name in ("RoundLedgerRulingWindowClosed", "ResultsCourtRulingWindowClosed"):
        text = (
            f"the ruling window of challenge {a['challengeId']} closed at chain time {a['endsAt']}: the arbiter "
            "can no longer rule, and anyone may lapse it (dismissed)"
        )
    elif name == "RoundLedgerUnknownRound":
        text = f"agreement {a['agreementId']} has no round {a['round']}"
    elif name == "RoundLedgerDisputeWindowClosed":
        status, ends = _window_end(deployment, a["agreementId"], a["round"])
        when = f" at chain time {ends} (now {_now(deployment)})" if ends is not None else f" (the round is {status})"
        text = (
            f"the dispute window of round {a['round']} of agreement {a['agreementId']} closed{when}: it can no "
            "longer be challenged"
        )
    elif name == "RoundLedgerNotParty":
        text = f"{a['account']} is not a party of agreement {a['agreementId']}"
    elif name == "RoundLedgerNoSubmission":
        text = (
            f"{a['partner']} committed no update in round {a['round']} of agreement {a['agreementId']}: "
            "there is nothing of it to challenge"
        )
    elif name == "RoundLedgerAlreadyChallenged":
        previous = _latest_challenge_of(deployment, a["agreementId"], a["round"], a["partner"])
        held = f"challenge {previous.challenge_id} ({previous.status})" if previous else "a pending challenge"
        text = (
            f"the update of {a['partner']} in round {a['round']} of agreement {a['agreementId']} is already "
            f"challenged: {held}; it can be challenged again only if that one is dismissed"
        )
    elif name == "RoundLedgerInvalidChallengeStatus":
        text = f"challenge {a['challengeId']} is {ChallengeStatus(int(a['status']))}: {what}"
    elif name == "RoundLedgerDisputeWindowOpen":
        ends = int(a["endsAt"])
        text = (
            (
                f"challenge {a['challengeId']}: its round is still open; it must be finalized and its dispute window "
                "end before the stake can be slashed"
            )
            if ends == _NEVER
            else (
                f"challenge {a['challengeId']}: the round's dispute window runs until chain time {ends} (now "
                f"{_now(deployment)}); the stake can be slashed after it"
            )
        )
    elif name == "RoundLedgerCommitmentValid":
        text = "the contract finds that commitment honest (its signature and entry match): there is no forgery to prove"
    elif name == "ResultsCourtRulingWindowOpen":
        text = (
            f"the ruling window of results challenge {a['challengeId']} runs until chain time {a['endsAt']} (now "
            f"{_now(deployment)}): only the arbiter can close it before then"
        )
    elif name == "ResultsCourtRoundNotFinalized":
        status, _ = _window_end(deployment, a["agreementId"], a["round"])
        text = (
            f"round {a['round']} of agreement {a['agreementId']} is {status}: only a finalized round's results "
            "can be challenged"
        )
    elif name == "ResultsCourtDisputeWindowClosed":
        text = (
            f"claims of round {a['round']} of agreement {a['agreementId']} opened at chain time "
            f"{a['claimableAt']} (now {_now(deployment)}): its results can no longer be challenged"
        )
    elif name == "ResultsCourtAlreadyChallenged":
        text = (
            f"the results of round {a['round']} of agreement {a['agreementId']} are already under results "
            f"challenge {a['challengeId']}; they can be challenged again only if it is dismissed"
        )
    elif name == "ResultsCourtChallengeNotOpen":
        text = f"results challenge {a['challengeId']} is {ResultsChallengeStatus(int(a['status']))}: {what}"
    elif name == "ResultsCourtNotParty":
        text = f"{a['account']} is not a party of agreement {a['agreementId']}: slashed bonds go to the parties"
    elif name == "ResultsCourtNothingToClaim":
        text = f"nothing of a slashed bond is owed to {a['party']} in agreement {a['agreementId']}"
    elif name == "RewardVaultChallengeNotExecuted":
        text = f"challenge {a['challengeId']} has not been executed: slash the stake first, then forfeit the reward"
    elif name == "RewardVaultAlreadyClaimed":
        text = f"the reward of {a['partner']} for round {a['round']} was already claimed or forfeited"
    else:
        text = f"the contract refused: {exc}"
    return ChallengeError(text)


def _simulate(call: Any, sender: str, deployment: Deployment, what: str) -> None:
    """Runs `call` as `sender` without sending it; a refusal becomes a ChallengeError in words."""
    from web3.exceptions import ContractCustomError, ContractLogicError

    from ..chain.transactions import decode_revert

    try:
        call.call({"from": sender})
    except (ContractCustomError, ContractLogicError) as exc:
        decoded = decode_revert(getattr(exc, "data", None))
        if decoded is None:
            raise ChallengeError(f"the contract refused: {exc}") from None
        raise _explain(decoded, deployment, what) from None


def _sent(receipt: Any) -> tuple[str, int]:
    return receipt["transactionHash"].to_0x_hex(), int(receipt["blockNumber"])


def _event(contract: Any, name: str, receipt: Any) -> dict[str, Any]:
    from web3.logs import DISCARD

    (event,) = getattr(contract.events, name)().process_receipt(receipt, errors=DISCARD)
    return dict(event["args"])


# -- the four steps ----------------------------------------------------------------------------------------------


def challenge_input(agreement_id: int, round_id: int, partner: str, evidence: Any) -> tuple[str, bytes]:
    """Checks what a challenge needs before anything is asked of the chain: returns the checksummed partner and
    the evidence document's bytes.

    Raises:
        ChallengeError: an id below 1, a partner that is not an address, evidence that is not a non-empty JSON
            object.
    """
    from ..chain._values import InvalidValue, as_address

    if not isinstance(evidence, Mapping) or not evidence:
        raise ChallengeError("the evidence must be a non-empty JSON object")
    if agreement_id < 1 or round_id < 1:
        raise ChallengeError(f"agreement and round ids start at 1, not agreement {agreement_id} round {round_id}")
    try:
        partner = as_address(partner, "partner")
    except InvalidValue as exc:
        raise ChallengeError(str(exc)) from None
    return partner, canonical_json(dict(evidence))


def raise_challenge(
    tx: Transactor,
    deployment: Deployment,
    store: Store,
    *,
    sender: str,
    agreement_id: int,
    round_id: int,
    partner: str,
    evidence: Mapping[str, Any],
) -> ChallengeTx:
    """Step 1: puts `evidence` (a failed check, or any JSON object) to the store and challenges `partner`'s
    update in `round_id` with its digest, as `sender` (an auditor whose key `tx` holds).

    Raises:
        ChallengeError: bad input, or the ledger would refuse (not an auditor, window closed, no submission,
            already challenged...); nothing was put or sent.
    """
    from ..rounds.report import content_digest, publish

    partner, document = challenge_input(agreement_id, round_id, partner, evidence)
    digest = content_digest(document)
    call = deployment.ledger.functions.challenge(agreement_id, round_id, partner, digest)
    _simulate(call, sender, deployment, "only an open challenge can be raised")
    cid, stored = publish(store, document)
    if stored != digest:  # the store computed another CID than the importer: never anchor what it cannot serve
        raise ChallengeError(f"the store put the evidence as {cid}, whose digest is not the one computed")
    receipt = tx.transact(call, sender)
    args = _event(deployment.ledger, "ChallengeRaised", receipt)
    tx_hash, block = _sent(receipt)
    return ChallengeTx(
        "raise",
        int(args["challengeId"]),
        tx_hash,
        block,
        {
            "agreement_id": agreement_id,
            "round": round_id,
            "partner": partner,
            "evidence_cid": cid,
            "evidence_digest": "0x" + digest.hex(),
        },
    )


def resolve_challenge(
    tx: Transactor, deployment: Deployment, store: Store, *, sender: str, challenge_id: int, upheld: bool, reason: str
) -> ChallengeTx:
    """Step 2: the agreement's arbiter `sender` rules on an Open challenge; the ruling document goes to the store
    and its digest on-chain.

    Raises:
        ChallengeError: no such challenge, it is not Open, `sender` is not the arbiter, or `reason` is empty.
    """
    from ..rounds.report import content_digest, publish

    if not reason.strip():
        raise ChallengeError("a ruling needs a reason (--reason): it is published with the ruling digest")
    record = read_challenge(deployment, challenge_id)
    document = ruling_document(challenge_id, upheld=upheld, reason=reason, evidence_digest=record.evidence_digest)
    digest = content_digest(document)
    call = deployment.ledger.functions.resolveChallenge(challenge_id, upheld, digest)
    _simulate(call, sender, deployment, "only an Open challenge can be resolved")
    cid, _ = publish(store, document)
    receipt = tx.transact(call, sender)
    tx_hash, block = _sent(receipt)
    return ChallengeTx(
        "resolve",
        challenge_id,
        tx_hash,
        block,
        {"upheld": upheld, "ruling_cid": cid, "ruling_digest": "0x" + digest.hex()},
    )


def slash(tx: Transactor, deployment: Deployment, *, sender: str, challenge_id: int) -> ChallengeTx:
    """Step 3: executes an Upheld challenge after its round's dispute window: the partner's whole stake in the
    agreement goes to the vault's slash recipient. Anyone may send it.

    Raises:
        ChallengeError: no such challenge, it is not Upheld, or the dispute window has not ended.
    """
    read_challenge(deployment, challenge_id)
    call = deployment.vault.functions.slash(challenge_id)
    _simulate(call, sender, deployment, "only an Upheld challenge can be executed by slashing")
    receipt = tx.transact(call, sender)
    args = _event(deployment.vault, "Slashed", receipt)
    tx_hash, block = _sent(receipt)
    return ChallengeTx(
        "slash",
        challenge_id,
        tx_hash,
        block,
        {"partner": args["partner"], "amount": str(args["amount"]), "recipient": args["recipient"]},
    )


def forfeit_reward(
    tx: Transactor, deployment: Deployment, store: Store, *, sender: str, challenge_id: int
) -> ChallengeTx:
    """Step 4: after the slash, sends the partner's reward for the challenged round to the slash recipient,
    proven by the payout tree rebuilt from the round report. Anyone may send it.

    Raises:
        ChallengeError: no such challenge, not executed yet, the round paid the partner nothing, or the reward
            was already claimed or forfeited.
        RoleStateError: the round report does not give the on-chain payout root.
        ArtifactNotFound: the round report is not in the store.
    """
    from ..rounds.roles import payout_tree

    record = read_challenge(deployment, challenge_id)
    if record.status != "Executed":
        raise ChallengeError(
            f"challenge {challenge_id} is {record.status}: the reward is forfeited only after "
            "the stake was slashed (status Executed)"
        )
    a, r, p = record.agreement_id, record.round, record.partner
    if deployment.vault.functions.hasClaimed(a, r, p).call():
        raise ChallengeError(f"the reward of {p} for round {r} of agreement {a} was already claimed or forfeited")
    status, _ = _window_end(deployment, a, r)
    tree = payout_tree(deployment, store, a, r) if status == "Finalized" else None
    amount = tree.payouts.get(p, 0) if tree is not None else 0
    if tree is None or amount == 0:
        raise ChallengeError(
            f"{p} was paid nothing in round {r} of agreement {a} (round {status}): no reward to forfeit"
        )
    call = deployment.vault.functions.forfeitReward(challenge_id, amount, tree.proof(p))
    _simulate(call, sender, deployment, "only an executed challenge's reward can be forfeited")
    receipt = tx.transact(call, sender)
    args = _event(deployment.vault, "RewardForfeited", receipt)
    tx_hash, block = _sent(receipt)
    return ChallengeTx(
        "forfeit",
        challenge_id,
        tx_hash,
        block,
        {"partner": p, "round": r, "amount": str(args["amount"]), "recipient": args["recipient"]},
    )
