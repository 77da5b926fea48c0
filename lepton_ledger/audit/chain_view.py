"""What the chain says, read by the auditor itself: every event of the five contracts (through its own
:class:`~lepton_ledger.chain.events.EventIndex`, never the coordinator's), grouped into agreements and rounds,
and contract state read at one fixed block (the audit's ``audited_at_block``) so that every figure is of the
same moment.

Nothing here trusts an off-chain document: a round's commitments are its ``UpdateSubmitted`` events and its
``BatchCommitted`` anchors (expanded from their batch documents by the checks, which verify them first).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from eth_abi.exceptions import DecodingError
from eth_utils.abi import get_abi_output_types
from web3 import Web3
from web3.contract.contract import ContractFunction

from ..chain.deployment import Deployment
from ..chain.events import EventIndex, IndexedEvent
from ..chain.merkle import unpack_entries
from ..chain.state import Round, Terms
from ..errors import ChainError
from ..units import RoundStatus

__all__ = ["ChainView", "Commitment", "RoundRecord"]

RECEIPTS_PAGE = 500  # receipts a batch request reads: one request for a few hundred rounds, bounded for a remote node


def digest_bytes(value: str) -> bytes:
    """A 0x-hex bytes32 of an indexed event as bytes."""
    return bytes.fromhex(value[2:])


@dataclass(frozen=True)
class Commitment:
    """One partner's commitment to its update in one round, single (``UpdateSubmitted``) or anchored in a
    batch (then `batch_cid` names the batch document it was read from, after that document was verified)."""

    agreement_id: int
    round: int
    partner: str
    envelope_digest: bytes
    manifest_digest: bytes
    cumulative_epsilon: int  # fixed point, 1e6 = 1.0, as committed on-chain
    sample_count: int
    tx_hash: str
    block: int
    batch_cid: str | None = None

    def evidence(self) -> dict[str, Any]:
        return {
            "tx_hash": self.tx_hash,
            "block": self.block,
            "envelope_digest": "0x" + self.envelope_digest.hex(),
            "manifest_digest": "0x" + self.manifest_digest.hex(),
            **({"batch_cid": self.batch_cid} if self.batch_cid else {}),
        }


@dataclass
class RoundRecord:
    """One round as the chain holds it: its opening, its single commitments, its anchored batches, its end."""

    agreement_id: int
    round: int
    opened: IndexedEvent
    status: RoundStatus
    singles: list[IndexedEvent] = field(default_factory=list)
    batches: list[IndexedEvent] = field(default_factory=list)
    finalized: IndexedEvent | None = None
    voided: IndexedEvent | None = None

    @property
    def model_digest(self) -> bytes:
        return digest_bytes(self.opened.args["modelDigest"])

    @property
    def eval_commitment(self) -> bytes:
        return digest_bytes(self.opened.args["evalCommitment"])

    @property
    def version(self) -> int:
        return int(self.opened.args["agreementVersion"])

    def single_commitments(self) -> list[Commitment]:
        return [
            Commitment(
                self.agreement_id,
                self.round,
                e.args["partner"],
                digest_bytes(e.args["envelopeDigest"]),
                digest_bytes(e.args["manifestDigest"]),
                int(e.args["cumulativeEpsilon"]),
                int(e.args["sampleCount"]),
                e.tx_hash,
                e.block_number,
            )
            for e in self.singles
        ]


class ChainView:
    """The deployment's events up to `block`, indexed into the SQLite file `events_path`, and its state at
    `block`.

    Raises:
        ChainError: (``sync``) a log does not decode with its contract's ABI.
    """

    def __init__(self, w3: Web3, addresses: dict[str, str], events_path: Path, block: int) -> None:
        self.w3, self.block = w3, block
        self.deployment = Deployment.at(w3, addresses)
        d = self.deployment
        self.index = EventIndex(
            w3,
            {
                "PartnerRegistry": d.partners,
                "AgreementRegistry": d.agreements,
                "RewardVault": d.vault,
                "RoundLedger": d.ledger,
                "ResultsCourt": d.court,
            },
            events_path,
        )
        self.index.sync(to_block=block)
        self._party_at: dict[tuple[int, int], str] = {}
        self._rounds: dict[int, list[RoundRecord]] = {}

    @cached_property
    def chain_id(self) -> int:
        return int(self.w3.eth.chain_id)

    @property
    def ledger_address(self) -> str:
        return self.deployment.ledger.address

    def events(self, name: str | list[str] | None = None, **filters: Any) -> list[IndexedEvent]:
        return self.index.events(name, **filters)

    # -- agreements -------------------------------------------------------------------------------------

    def agreement_ids(self) -> list[int]:
        return [int(e.args["agreementId"]) for e in self.events("AgreementProposed")]

    @cached_property
    def _terms(self) -> dict[tuple[int, int], Terms]:
        terms: dict[tuple[int, int], Terms] = {}
        for e in self.events(["AgreementProposed", "AgreementAmended"]):
            version = int(e.args.get("version", 1))
            terms[(int(e.args["agreementId"]), version)] = Terms.from_event(e.args["terms"])
        return terms

    def terms(self, agreement_id: int, version: int) -> Terms:
        """The terms of `version` of the agreement, as its ``AgreementProposed``/``AgreementAmended`` event
        published them."""
        return self._terms[(agreement_id, version)]

    def party_at(self, agreement_id: int, index: int) -> str:
        key = (agreement_id, index)
        if key not in self._party_at:
            self._party_at[key] = self.deployment.agreements.functions.partyAt(agreement_id, index).call(
                block_identifier=self.block
            )
        return self._party_at[key]

    def party_index(self, agreement_id: int, partner: str) -> int | None:
        is_party, index = self.deployment.agreements.functions.partyIndex(agreement_id, partner).call(
            block_identifier=self.block
        )
        return int(index) if is_party else None

    # -- rounds -----------------------------------------------------------------------------------------

    def rounds(self, agreement_id: int) -> list[RoundRecord]:
        """Every round the agreement opened, in order, with its events and its status at the audit block."""
        if agreement_id not in self._rounds:
            self._rounds[agreement_id] = self._read_rounds(agreement_id)
        return self._rounds[agreement_id]

    def _read_rounds(self, agreement_id: int) -> list[RoundRecord]:
        records: dict[int, RoundRecord] = {}
        opened: list[IndexedEvent] = []
        later: list[IndexedEvent] = []
        # An abandoned round (nobody finalized it in time) is voided on-chain like a disproven one.
        for e in self.events(
            ["RoundOpened", "UpdateSubmitted", "BatchCommitted", "RoundFinalized", "RoundVoided", "RoundAbandoned"],
            agreement_id=agreement_id,
        ):
            (opened if e.event == "RoundOpened" else later).append(e)
        ledger = self.deployment.ledger.functions
        # Every round's status from one batch request (a request a round cost more than the rounds' other reads).
        rounds = self.call_many([ledger.round(agreement_id, int(e.args["round"])) for e in opened])
        for e, values in zip(opened, rounds):
            records[int(e.args["round"])] = RoundRecord(
                agreement_id, int(e.args["round"]), e, Round.decode(values).status
            )
        for e in later:
            record = records.get(int(e.args["round"]))
            if record is None:  # an event for a round never opened: event_history reports it
                continue
            if e.event == "UpdateSubmitted":
                record.singles.append(e)
            elif e.event == "BatchCommitted":
                record.batches.append(e)
            elif e.event == "RoundFinalized":
                record.finalized = e
            else:
                record.voided = e
        return [records[r] for r in sorted(records)]

    def call_many(self, functions: list[ContractFunction]) -> list[Any]:
        """The answers of view `functions` at the audit block, from one batch request, decoded by the codec (a
        struct as the tuple of its fields, as web3's ``call`` gives it, but an address in lower case).

        Raises:
            ChainError: the node answered one of them with an error or with bytes that do not decode.
        """
        if not functions:
            return []
        block = hex(self.block)
        answers = self._batch(
            [("eth_call", [{"to": f.address, "data": f._encode_transaction_data()}, block]) for f in functions]
        )
        out = []
        for f, answer in zip(functions, answers):
            types = get_abi_output_types(f.abi)
            try:
                values = self.w3.codec.decode(types, bytes.fromhex(answer["result"][2:]))
            except (KeyError, TypeError, ValueError, DecodingError):
                raise ChainError(f"the node gave no answer to {f.fn_name}{f.args}: {answer!r:.200}") from None
            out.append(values[0] if len(values) == 1 else values)
        return out

    def voided_entries(self, agreement_id: int) -> set[tuple[int, str]]:
        """``(round, party)`` of every batch entry its party disputed and nobody answered in time: voided
        on-chain (``DisputedEntryVoided``), its epsilon restored. It is no update of the party's."""
        return {
            (int(e.args["round"]), e.args["party"])
            for e in self.events("DisputedEntryVoided", agreement_id=agreement_id)
        }

    def batch_parties(self, agreement_id: int, event: IndexedEvent) -> list[str]:
        """The parties of a ``BatchCommitted``'s entries that took effect (entries skipped on-chain spent nothing)."""
        skipped = int(event.args.get("skipped", 0))
        return [
            self.party_at(agreement_id, index)
            for position, (index, _) in enumerate(unpack_entries(digest_bytes(event.args["entries"])))
            if not skipped >> position & 1
        ]

    def committed_rounds(self, agreement_id: int) -> dict[str, list[int]]:
        """For each partner, the rounds in which the chain holds a commitment of its (single or anchored:
        an anchored entry names the party by index; a voided entry is none), in order: the DP history its
        epsilon must compose."""
        rounds: dict[str, set[int]] = {}
        voided = self.voided_entries(agreement_id)
        for e in self.events(["UpdateSubmitted", "BatchCommitted"], agreement_id=agreement_id):
            r = int(e.args["round"])
            parties = [e.args["partner"]] if e.event == "UpdateSubmitted" else self.batch_parties(agreement_id, e)
            for party in parties:
                if (r, party) not in voided:
                    rounds.setdefault(party, set()).add(r)
        return {p: sorted(rs) for p, rs in rounds.items()}

    def gas_used(self, agreement_id: int, round_id: int) -> int:
        """Gas of every transaction that emitted an event of this round (open, commits, finalize, claims)."""
        return sum(self._gas[h] for h in {e.tx_hash for e in self.events(agreement_id=agreement_id, round=round_id)})

    @cached_property
    def _gas(self) -> dict[str, int]:
        """Gas used by every transaction that emitted an event of a round, by hash: their receipts read raw, a
        page of them a batch request (web3's formatting of a whole receipt cost ten times the request, for one
        field; a request a round, 50 requests for 50 rounds)."""
        hashes = sorted({e.tx_hash for e in self.events() if e.round is not None})
        gas: dict[str, int] = {}
        for page in range(0, len(hashes), RECEIPTS_PAGE):
            chunk = hashes[page : page + RECEIPTS_PAGE]
            answers = self._batch([("eth_getTransactionReceipt", [h]) for h in chunk])
            try:
                gas.update((h, int(answer["result"]["gasUsed"], 16)) for h, answer in zip(chunk, answers))
            except (KeyError, TypeError, ValueError):
                raise ChainError(f"the node gave no receipt for a transaction of a round: {answers!r:.200}") from None
        return gas

    def _batch(self, requests: list[tuple[str, list[Any]]]) -> list[Any]:
        answers = self.w3.provider.make_batch_request(requests)  # type: ignore[attr-defined]
        if not isinstance(answers, list) or len(answers) != len(requests):
            raise ChainError(f"the node answered a batch of {len(requests)} requests with {answers!r:.200}")
        return answers
