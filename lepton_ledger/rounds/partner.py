"""A partner's side of one round (docs/architecture.md, "One round, end to end", steps 2-4 and 6).

:meth:`Partner.run_round` is the whole partner round, in named steps:

2. ``fetch_model``: the global model by the round's on-chain ``modelDigest`` (a CID digest, report.py), so the
   bytes are those the coordinator committed; ``check_budget``: the DP plan against the partner's own
   :class:`~lepton_ledger.fl.PrivacyAccountant` *before* anything trains (``BudgetExceeded``);
   ``train``: ``fl.train_local`` in a worker of the given executor (a ``LocalExecutor`` by default), never in
   the caller's process;
3. ``seal_update``: an envelope (envelope package) to the recipients' X25519 keys as registered in the
   PartnerRegistry (coordinator and auditors); ``prepare_update`` records it in the outbox, records the round
   in the accountant (the envelope is about to leave: from then on its recipients may read it, whatever the
   chain later says of the commitment, so the partner never under-counts its epsilon), then puts it to the
   store;
4. ``commit``: ``RoundLedger.submitUpdate(envelope digest = the envelope's CID digest, manifest digest,
   cumulative epsilon fixed point, sample count)``. Batched mode (:meth:`Partner.run_round_batched`):
   ``sign_commitment`` signs the same ``UpdateCommitment`` (EIP-712, the ledger's domain) and hands it to the
   coordinator, who anchors all of them with ``commitBatch``.
6. ``claim``: ``RewardVault.claim`` with the payout proof, after the dispute window.

Crash safety. Every side effect goes through the partner's outbox (effects.py: keys name chain, ledger,
agreement, round, partner and step), so calling the same step again with the same arguments after a crash
resumes it:

- the sealed envelope (fresh keys: not reproducible) is recorded in the outbox *before* it is put or committed;
  a restart puts and commits that same envelope. A partner that died before that point trains again, which
  gives the identical update: training is seeded (:meth:`Partner.round_seed`, derived from the partner's secret
  ``TrainingSettings.seed`` and the round, so every round draws fresh noise) and deterministic, and nothing of
  the first run was released, so no extra privacy is spent;
- the accountant is persisted (accountant_file.py) and each round recorded exactly once, under the key of the
  outbox operation that releases its envelope; :meth:`Partner.reconcile` (run before every round) finishes what
  a dead process left in flight, records every envelope the outbox holds that the accountant lacks, and refuses
  to go on when the chain holds more epsilon than the accountant can explain (``AccountantBehindChain``). A
  commitment the ledger refused (say, its deadline passed) still counts: the next one commits a cumulative
  epsilon that includes it (the ledger accepts any growth within the cap);
- ``submitUpdate`` and ``claim`` are sent once (outbox.TransactionHandler), whatever the process or the node
  went through.

Round trips (single mode: three requests). :meth:`Partner.reconcile` reads in one batch request the partner's
epsilon on-chain, the round's model digest, the recipients' keys, and the nonce, gas and fees of the round's
``submitUpdate`` (its gas estimated with placeholder digests: a dry run before training); then the send and
the receipt. A refusal the dry run shows leaves the transaction to be prepared at commit, as without it; one
that comes after it (the deadline passed during training) is mined as a revert, its reason decoded from the
call replayed (outbox.TransactionHandler), the nonce spent.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from ..chain.batched import prepare_with_reads, read_many
from ..chain.calls import calls
from ..chain.deployment import Deployment
from ..chain.state import Partner as PartnerRecord
from ..chain.state import Round as RoundRecord
from ..chain.transactions import Transactor
from ..chain.typed_data import UpdateCommitment, sign_digest, update_commitment_digest
from ..envelope import seal
from ..envelope.envelope import SealedEnvelope
from ..envelope.manifest import DPRecord
from ..envelope.tensors import deserialize_tensors
from ..errors import BudgetExceeded, ChainError, ConfigurationError, ContractReverted, LeptonError
from ..fl.accounting import PrivacyAccountant, Round
from ..fl.data import TabularData
from ..fl.training import TrainResult, plan_dp
from ..storage.store import Store
from ..workers.base import Executor
from .accountant_file import AccountantFile
from .accountant_file import accountant_path as default_path
from .effects import Checkpoint, RoundEffects, default_outbox, put_data, put_result
from .outbox import Operation, Outbox, transaction_payload
from .report import content_digest, fetch_by_digest

__all__ = [
    "AccountantBehindChain",
    "AccountingMismatch",
    "ModelDigestMismatch",
    "Partner",
    "PreparedUpdate",
    "SignedCommitment",
    "Submission",
    "TrainingSettings",
    "recipient_keys",
]


class ModelDigestMismatch(LeptonError, ValueError):
    """The fetched global model is not the one the round committed to on-chain."""


class AccountantBehindChain(LeptonError, RuntimeError):
    """The chain holds a higher cumulative epsilon for the partner than its accountant and outbox account for
    (their files were lost or replaced): training on would under-count the privacy spent."""


class AccountingMismatch(LeptonError, RuntimeError):
    """Recording a round gave another cumulative epsilon than the one committed for it."""


# A model's training settings unless told otherwise (the demo's and the CLI's). Logreg, measured in the demo's 5
# rounds at noise 1: half the class's batch (64), twice its step (lr 0.5), more accuracy for less epsilon
# (bench/fl_utility.py --demo-data, validation split: 0.794 against 0.662); lr 2 scored 0.817 but over-steps once
# the free-rider's zero update is left out, so leave-one-out paid the free-rider. The other models were not
# measured and keep the class's defaults.
MODEL_TRAINING: dict[str, dict[str, Any]] = {"logreg": {"batch_size": 32, "lr": 1.0, "max_grad_norm": 1.0}}


@dataclass(frozen=True)
class TrainingSettings:
    """The local training a partner runs each round (see ``fl.train_local``)."""

    model: str = "logreg"
    epochs: int = 1
    batch_size: int = 64
    lr: float = 0.5
    max_grad_norm: float = 1.0
    noise_multiplier: float = 1.0
    seed: int = 0
    device: str | None = None  # None: CUDA when the worker has a GPU, else CPU (fl.training.default_device)

    @classmethod
    def for_model(cls, model: str, **given: Any) -> TrainingSettings:
        """`model`'s settings: its own defaults (:data:`MODEL_TRAINING`), then those `given` (None: not given)."""
        return cls(
            model=model, **{**MODEL_TRAINING.get(model, {}), **{k: v for k, v in given.items() if v is not None}}
        )

    def options(self) -> dict[str, Any]:
        """What may be told about this training (the seed stays secret: it derives the round's DP noise)."""
        return {
            "model": self.model,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "max_grad_norm": self.max_grad_norm,
            "noise_multiplier": self.noise_multiplier,
        }


@dataclass
class Submission:
    """What a partner committed for one round."""

    envelope_cid: str
    envelope_digest: bytes
    manifest_digest: bytes
    cumulative_epsilon_fixed: int
    sample_count: int
    tx_hash: str
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PreparedUpdate:
    """A sealed update whose bytes are durable in the outbox and published: what steps 3-4 commit."""

    agreement_id: int
    round_id: int
    envelope: bytes
    envelope_cid: str
    envelope_digest: bytes  # the CID digest, as committed on-chain
    manifest_digest: bytes
    cumulative_epsilon_fixed: int
    sample_count: int
    dp_round: Round
    metrics: dict[str, float]

    @classmethod
    def from_operation(cls, op: Operation, envelope: bytes) -> PreparedUpdate:
        """From the confirmed ``"envelope"`` put operation (payload written by :meth:`Partner.prepare_update`) and
        the `envelope` bytes it holds."""
        p = op.payload
        cid, digest = put_result(op)
        return cls(
            int(p["agreement_id"]),
            int(p["round"]),
            envelope,
            cid,
            digest,
            bytes.fromhex(p["manifest_digest"][2:]),
            int(p["accounting"]["cumulative_epsilon"]),
            int(p["sample_count"]),
            Round.coerce(p["accounting"]["round"]),
            dict(p["metrics"]),
        )

    def commitment(self, partner: str) -> UpdateCommitment:
        return UpdateCommitment(
            self.agreement_id,
            self.round_id,
            partner,
            self.envelope_digest,
            self.manifest_digest,
            self.cumulative_epsilon_fixed,
            self.sample_count,
        )


def accounting_record(agreement_id: int, dp_round: Round, cumulative_fixed: int) -> dict[str, Any]:
    """What an operation that spends privacy carries so that a restart can record it: the agreement, the DP
    round ``[noise multiplier, sample rate, steps]`` and the cumulative epsilon committed (fixed point)."""
    return {
        "agreement": str(agreement_id),
        "round": [dp_round.noise_multiplier, dp_round.sample_rate, dp_round.steps],
        "cumulative_epsilon": cumulative_fixed,
    }


@dataclass(frozen=True)
class SignedCommitment:
    """A partner's EIP-712-signed ``UpdateCommitment`` for the coordinator's batch, with its envelope's CID."""

    commitment: UpdateCommitment
    signature: bytes
    envelope_cid: str


def recipient_keys(deployment: Deployment, addresses: list[str]) -> list[bytes]:
    """The X25519 public keys the PartnerRegistry holds for `addresses` (coordinator, auditors...), read in one
    request."""
    reads = [calls(deployment.partners).partnerOf(a) for a in addresses]
    return [PartnerRecord.decode(p).encryption_key for p in read_many(deployment.partners.w3, reads)]


def _train_task(
    model_bytes: bytes,
    data: TabularData,
    settings: TrainingSettings,
    delta: float,
    accountant: str,
    seed: int | None = None,
) -> TrainResult:
    """Runs in a worker process: rebuilds the model from its safetensors bytes and trains it with DP-SGD."""
    from ..fl import build_model, train_local

    state = deserialize_tensors(model_bytes)
    model = build_model(settings.model, data.input_dim, data.num_classes, seed=0)
    model.load_state_dict(state)
    return train_local(
        model=model,
        data=data,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        lr=settings.lr,
        max_grad_norm=settings.max_grad_norm,
        noise_multiplier=settings.noise_multiplier,
        delta=delta,
        accountant=accountant,
        seed=settings.seed if seed is None else seed,
        device=settings.device,
    )


class Partner:
    """One partner: its Ethereum account (signs manifests and transactions), its data, its accountant.

    `tx` must hold the account's key; `executor` runs training (``workers.LocalExecutor`` or ``RayExecutor``).
    `accountant` is the partner's ``fl.PrivacyAccountant`` under one agreement.

    Args:
        outbox: where side effects are recorded before they happen; default a file per partner and chain under
            the data directory (effects.default_outbox).
        accountant_path: the accountant's JSON file (accountant_file.py), loaded into `accountant` when it
            exists; default ``accountant_file.accountant_path`` in the outbox's folder.
        checkpoint: called at each durable step (effects.py names them); tests kill the process there.

    Raises (constructor):
        ConfigurationError: the accountant file belongs to another partner, agreement or terms.
    """

    def __init__(
        self,
        *,
        account: LocalAccount,
        tx: Transactor,
        deployment: Deployment,
        store: Store,
        accountant: PrivacyAccountant,
        data: TabularData | None,
        executor: Executor | None,
        settings: TrainingSettings = TrainingSettings(),
        outbox: Outbox | None = None,
        accountant_path: Path | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> None:
        self.account, self.tx, self.deployment, self.store = account, tx, deployment, store
        self.accountant, self.data, self.executor, self.settings = accountant, data, executor, settings
        self.outbox = outbox if outbox is not None else default_outbox("partner", tx.w3, account.address)
        self.effects = RoundEffects(self.outbox, tx=tx, store=store, checkpoint=checkpoint)
        self.checkpoint = self.effects.checkpoint
        path = accountant_path or default_path(
            self.outbox.path.parent, tx.w3, deployment.ledger.address, accountant.agreement, account.address
        )
        self.accountant_file = AccountantFile(accountant, path)
        # What reconcile read for the round in its one request: the model digest (final once the round is open)
        # and the recipients' keys (read every round: a party may rotate its key).
        self._model_digests: dict[tuple[int, int], bytes] = {}
        self._recipient_keys: dict[tuple[str, ...], list[bytes]] = {}
        # The nonce, gas and fees of a round's submitUpdate, read with reconcile's reads (used once by commit).
        self._submit_ahead: dict[tuple[int, int | None], dict[str, Any]] = {}

    @property
    def address(self) -> str:
        return self.account.address

    def _key(self, step: str, agreement_id: int, round_id: int) -> str:
        return self.effects.key(step, self.deployment.ledger.address, agreement_id, round_id, self.address)

    def _check_agreement(self, agreement_id: int) -> None:
        if str(agreement_id) != self.accountant.agreement:
            raise ConfigurationError(
                f"this partner's accountant is for agreement {self.accountant.agreement}, not {agreement_id}"
            )

    # -- crash recovery ---------------------------------------------------------------------------------

    def reconcile(
        self,
        agreement_id: int,
        round_id: int | None = None,
        recipient_addresses: list[str] | None = None,
        *,
        submitting: bool = False,
    ) -> int:
        """Finishes the outbox's unfinished operations (a dead process's puts and transactions), records every
        round the outbox shows as spent but the accountant lacks, then checks the chain; returns the accountant's
        cumulative epsilon (fixed point). With `round_id` and `recipient_addresses`, that round's model digest
        and the recipients' keys are read in the same request, for the round that follows; `submitting`, the
        nonce, gas and fees of the round's ``submitUpdate`` too (:meth:`_submit_dry_run`).

        Raises:
            AccountantBehindChain: the chain holds more epsilon for this partner than the accountant.
            AccountingMismatch: a recorded round gives another cumulative epsilon than was committed.
            ChainError: the node is unreachable (call again).
        """
        self._check_agreement(agreement_id)
        self.effects.runner.run()  # a transaction in flight may already be on-chain: settle it first
        ledger = self.deployment.ledger.address
        # Every envelope recorded for release counts, put or not yet: its privacy is spent once anyone may read it.
        for key in self.outbox.keys(prefix=self.effects.key("envelope", ledger, agreement_id) + ":"):
            if key.endswith(":" + self.address) and not self.accountant_file.has(key):
                self._record(key, self.outbox.get(key).payload["accounting"])
        ledger_calls = calls(self.deployment.ledger)
        recipients = list(recipient_addresses or [])
        reads = [
            ledger_calls.cumulativeEpsilon(agreement_id, self.address),
            *(calls(self.deployment.partners).partnerOf(a) for a in recipients),
        ]
        if round_id is not None and (agreement_id, round_id) not in self._model_digests:
            reads.append(ledger_calls.round(agreement_id, round_id))
        dry_run = self._submit_dry_run(agreement_id, round_id) if submitting and round_id is not None else None
        epsilon, *answers = self._read(reads, dry_run, (agreement_id, round_id))
        if recipients:
            self._recipient_keys[tuple(recipients)] = [
                PartnerRecord.decode(p).encryption_key for p in answers[: len(recipients)]
            ]
        round_state = [RoundRecord.decode(r) for r in answers[len(recipients) :]]
        if (
            round_id is not None and round_state and any(round_state[0].model_digest)
        ):  # an open round's digest is final; zero: no round yet
            self._model_digests[(agreement_id, round_id)] = round_state[0].model_digest
        on_chain = int(epsilon)
        spent = self.accountant.spent_fixed()
        if on_chain > spent:
            raise AccountantBehindChain(
                f"the ledger holds cumulative epsilon {on_chain} (fixed point) for {self.address} under agreement "
                f"{agreement_id}; its accountant ({self.accountant_file.path}) and outbox account for {spent}"
            )
        return spent

    def _submit_dry_run(self, agreement_id: int, round_id: int) -> dict[str, Any] | None:
        """The round's ``submitUpdate`` transaction (``to``, ``data``) as :meth:`commit` will send it, for its
        nonce, gas and fees to be read before training, with the round's other reads: the envelope's digests,
        not known yet, are placeholders that cost the most calldata gas (no zero byte). None when it is sent
        already or the budget refuses the round (:meth:`check_budget` says so before training)."""
        submit = self.outbox.find(self._key("submit", agreement_id, round_id))
        if submit is not None and submit.status != "failed":
            return None
        envelope = self.outbox.find(self._key("envelope", agreement_id, round_id))
        if envelope is not None:
            cumulative = int(envelope.payload["accounting"]["cumulative_epsilon"])
        else:
            try:
                cumulative = self.check_budget()
            except BudgetExceeded:
                return None
        placeholder = b"\xff" * 32
        call = calls(self.deployment.ledger).submitUpdate(
            agreement_id, round_id, placeholder, placeholder, cumulative, len(self._training()[0])
        )
        payload = transaction_payload(call, self.address)
        return {"to": payload["to"], "data": payload["data"]}

    def _read(self, reads: list[Any], dry_run: dict[str, Any] | None, round_key: tuple[int, int | None]) -> list[Any]:
        """The results of `reads`, in one request; with `dry_run`, its nonce, gas and fees in the same request,
        kept for :meth:`commit`. A dry run the ledger refuses now is not kept: :meth:`commit` prepares the
        transaction as usual, and says why it is refused if it still is."""
        w3 = self.deployment.ledger.w3
        if dry_run is not None:
            try:
                prepared, results = prepare_with_reads(w3, dry_run, self.address, reads)
            except (ContractReverted, ChainError):
                pass
            else:
                self._submit_ahead[round_key] = {k: v for k, v in prepared.items() if k not in dry_run}
                return results
        return read_many(w3, reads)

    def _record(self, key: str, record: dict[str, Any]) -> None:
        """Records the round spent by operation `key`, once."""
        if self.accountant_file.has(key):
            return
        after = self.accountant_file.record_once(key, Round.coerce(record["round"]))
        if after != int(record["cumulative_epsilon"]):
            raise AccountingMismatch(
                f"recording {key!r} took the accountant to {after}, the commitment says {record['cumulative_epsilon']}"
            )

    # -- step 2 -----------------------------------------------------------------------------------------

    def fetch_model(self, agreement_id: int, round_id: int) -> tuple[bytes, bytes]:
        """The global model's bytes and the on-chain ``modelDigest`` they match.

        Raises:
            ArtifactNotFound: the store has no artifact with that digest.
            ModelDigestMismatch: the bytes do not hash to the digest (a store that lied).
        """
        digest = self._model_digests.get((agreement_id, round_id))
        if digest is None:
            digest = RoundRecord.read(calls(self.deployment.ledger).round(agreement_id, round_id)).model_digest
        data = fetch_by_digest(self.store, digest)
        recomputed = content_digest(data)
        if recomputed != digest:
            raise ModelDigestMismatch(f"model bytes hash to 0x{recomputed.hex()}, round committed 0x{digest.hex()}")
        return data, digest

    def recipient_keys(self, addresses: list[str]) -> list[bytes]:
        """The registered X25519 keys of `addresses`: as the round's :meth:`reconcile` read them (once: a key
        may be rotated before the next round), else from the chain now."""
        keys = self._recipient_keys.pop(tuple(addresses), None)
        return keys if keys is not None else recipient_keys(self.deployment, addresses)

    def check_budget(self) -> int:
        """The cumulative epsilon (fixed point) after this round, checked against the cap before training.

        Raises:
            BudgetExceeded: the round would take the partner over its cap; nothing trains.
        """
        s = self.settings
        plan = plan_dp(
            sample_count=len(self._training()[0]),
            batch_size=s.batch_size,
            epochs=s.epochs,
            delta=self.accountant.delta,
            max_grad_norm=s.max_grad_norm,
            noise_multiplier=s.noise_multiplier,
            accountant=self.accountant.kind.value,
        )
        return self.accountant.check_budget(plan.as_round())

    def round_seed(self, agreement_id: int, round_id: int) -> int:
        """The training seed of one round: derived from the secret ``settings.seed`` and the round, so that a
        rerun after a crash gives the identical update while different rounds draw independent noise."""
        scope = f"{self.settings.seed}:{self.tx.chain_id}:{self.deployment.ledger.address}:{agreement_id}:{round_id}"
        return int.from_bytes(hashlib.sha256(scope.encode()).digest()[:7], "big")

    def train(self, model_bytes: bytes, *, seed: int | None = None) -> TrainResult:
        """``fl.train_local`` in a worker of the executor (with `seed`, default ``settings.seed``)."""
        data, executor = self._training()
        future = executor.submit(
            _train_task, model_bytes, data, self.settings, self.accountant.delta, self.accountant.kind.value, seed
        )
        return future.result()

    def _training(self) -> tuple[TabularData, Executor]:
        if self.data is None or self.executor is None:
            raise ConfigurationError(f"partner {self.address} was built without data or an executor: it cannot train")
        return self.data, self.executor

    # -- step 3 -----------------------------------------------------------------------------------------

    def seal_update(
        self,
        result: TrainResult,
        *,
        agreement_id: int,
        round_id: int,
        base_model_digest: bytes,
        recipients: list[bytes],
    ) -> SealedEnvelope:
        """Seals the update to `recipients` (nothing is put or recorded)."""
        assert result.dp is not None
        cumulative = self.accountant.would_spend(result.dp.as_round())
        return seal(
            result.delta,
            signer_key=bytes(self.account.key),
            recipients=recipients,
            chain_id=self.tx.chain_id,
            ledger=self.deployment.ledger.address,
            agreement_id=agreement_id,
            round=round_id,
            base_model_digest=base_model_digest,
            dp=DPRecord.from_params(result.dp),
            cumulative_epsilon=cumulative,
            sample_count=result.sample_count,
            metrics=result.metrics,
        )

    def prepare_update(self, agreement_id: int, round_id: int, recipient_addresses: list[str]) -> PreparedUpdate:
        """Steps 2-3: fetch, check the budget, train, seal, record the envelope in the outbox, put it. A sealed
        envelope already recorded for this round is put (if it is not yet) and returned without training.

        Raises:
            BudgetExceeded, ModelDigestMismatch, ArtifactNotFound: as :meth:`run_round`.
        """
        self._check_agreement(agreement_id)
        key = self._key("envelope", agreement_id, round_id)
        envelope = None  # its bytes, once sealed here (else read back from the outbox)
        op = self.outbox.find(key)
        if op is None:
            model_bytes, model_digest = self.fetch_model(agreement_id, round_id)
            self.check_budget()
            result = self.train(model_bytes, seed=self.round_seed(agreement_id, round_id))
            self.checkpoint("train:done", None)
            assert result.dp is not None
            sealed = self.seal_update(
                result,
                agreement_id=agreement_id,
                round_id=round_id,
                base_model_digest=model_digest,
                recipients=self.recipient_keys(recipient_addresses),
            )
            m = sealed.manifest
            accounting = accounting_record(agreement_id, result.dp.as_round(), m.cumulative_epsilon)
            put = self.effects.put_operation(
                key,
                sealed.data,
                agreement_id=agreement_id,
                round=round_id,
                accounting=accounting,
                manifest_digest="0x" + sealed.manifest_digest.hex(),
                sample_count=m.sample_count,
                metrics=dict(result.metrics),
                options=self.settings.options(),
            )
            op = self.outbox.enqueue(*put)
            self.checkpoint("envelope:enqueued", op)
            if op.payload["cid"] == put[2]["cid"]:  # else another process of this partner recorded its own first
                envelope = sealed.data
        # Recorded before the envelope leaves this process: whatever the ledger later says of the commitment
        # (accepted, refused after its deadline), the recipients can read the update, so its epsilon is spent.
        self._record(key, op.payload["accounting"])
        self.checkpoint("accountant:recorded", None)
        op = self.effects.finish(key, known=op)
        return PreparedUpdate.from_operation(op, put_data(self.outbox, op) if envelope is None else envelope)

    # -- step 4 -----------------------------------------------------------------------------------------

    def commit(self, prepared: PreparedUpdate) -> Submission:
        """``submitUpdate`` on-chain, once (the round is in the accountant since its envelope was recorded)."""
        call = calls(self.deployment.ledger).submitUpdate(
            prepared.agreement_id,
            prepared.round_id,
            prepared.envelope_digest,
            prepared.manifest_digest,
            prepared.cumulative_epsilon_fixed,
            prepared.sample_count,
        )
        accounting = accounting_record(prepared.agreement_id, prepared.dp_round, prepared.cumulative_epsilon_fixed)
        op = self.effects.transact(
            self._key("submit", prepared.agreement_id, prepared.round_id),
            call,
            self.address,
            read_ahead=self._submit_ahead.pop((prepared.agreement_id, prepared.round_id), None),
            accounting=accounting,
        )
        return Submission(
            prepared.envelope_cid,
            prepared.envelope_digest,
            prepared.manifest_digest,
            prepared.cumulative_epsilon_fixed,
            prepared.sample_count,
            op.result["tx_hash"],
            dict(prepared.metrics),
        )

    def sign_commitment(self, prepared: PreparedUpdate) -> SignedCommitment:
        """Step 4, batched: signs the ``UpdateCommitment`` (deterministic: a rerun gives the same signature) and
        records in the outbox that it is given away (the round is in the accountant since its envelope was)."""
        commitment = prepared.commitment(self.address)
        digest = update_commitment_digest(self.tx.chain_id, self.deployment.ledger.address, commitment)
        signature = sign_digest(bytes(self.account.key), digest)
        key = self._key("signature", prepared.agreement_id, prepared.round_id)
        accounting = accounting_record(prepared.agreement_id, prepared.dp_round, prepared.cumulative_epsilon_fixed)
        op = self.outbox.enqueue(key, "record", {"accounting": accounting, "signature": "0x" + signature.hex()})
        self.checkpoint("signature:enqueued", op)
        if op.status != "confirmed":
            op = self.outbox.mark_confirmed(key, {"signature": "0x" + signature.hex()})
        self.checkpoint("signature:confirmed", op)
        return SignedCommitment(commitment, signature, prepared.envelope_cid)

    def run_round_batched(self, agreement_id: int, round_id: int, recipient_addresses: list[str]) -> SignedCommitment:
        """Steps 2-4 in batched mode: the signed commitment, for the coordinator's ``anchor_batch``.

        Raises:
            as :meth:`run_round`, but nothing is sent to the chain.
        """
        self.reconcile(agreement_id, round_id, recipient_addresses)
        return self.sign_commitment(self.prepare_update(agreement_id, round_id, recipient_addresses))

    def run_round(self, agreement_id: int, round_id: int, recipient_addresses: list[str]) -> Submission:
        """Steps 2-4 for one round; called again after a crash, it resumes where the dead process stopped.

        Raises:
            BudgetExceeded: before training, when the round would exceed the partner's epsilon cap.
            ModelDigestMismatch, ArtifactNotFound: the global model cannot be fetched as committed.
            ContractReverted: the ledger refused the commitment.
            ChainError: the node is unreachable (call again to resume).
            AccountantBehindChain, ConfigurationError: the accountant does not belong to this agreement or
                cannot explain the chain's epsilon.
        """
        self.reconcile(agreement_id, round_id, recipient_addresses, submitting=True)
        return self.commit(self.prepare_update(agreement_id, round_id, recipient_addresses))

    # -- step 6 -----------------------------------------------------------------------------------------

    def claim(self, agreement_id: int, round_id: int, amount: int, proof: list[bytes]) -> str:
        """``RewardVault.claim`` with this partner's payout proof, sent once; returns the tx hash.

        Raises:
            ContractReverted: the vault refused (wrong proof, dispute window open, ...).
        """
        op = self.effects.transact(
            self._key("claim", agreement_id, round_id),
            calls(self.deployment.vault).claim(agreement_id, round_id, amount, proof),
            self.address,
        )
        return str(op.result["tx_hash"])
