"""A partner's side of one round (DESIGN.md, "One round, end to end", steps 2-4 and 6).

:meth:`Partner.run_round` is the whole partner round, in named steps:

2. ``fetch_model``: the global model by the round's on-chain ``modelDigest`` (a CID digest, report.py), so the
   bytes are those the coordinator committed; ``check_budget``: the DP plan against the partner's own
   :class:`~lepton_ledger.fl.PrivacyAccountant` *before* anything trains (``BudgetExceeded``);
   ``train``: ``fl.train_local`` in a worker of the given executor (a ``LocalExecutor`` by default), never in
   the caller's process;
3. ``seal_update``: an envelope (envelope package) to the recipients' X25519 keys as registered in the
   PartnerRegistry (coordinator and auditors), put to the store;
4. ``commit``: ``RoundLedger.submitUpdate(envelope digest = the envelope's CID digest, manifest digest,
   cumulative epsilon fixed point, sample count)``, then the round is recorded in the accountant (only
   once the chain accepted it). Batched mode (:meth:`Partner.run_round_batched`): ``sign_commitment``
   signs the same ``UpdateCommitment`` (EIP-712, the ledger's domain) and hands it to the coordinator, who
   anchors all of them with ``commitBatch``; the round is recorded in the accountant when the signature is
   given away (it can be anchored at any time after), so the partner never under-counts its epsilon.
6. ``claim``: ``RewardVault.claim`` with the payout proof, after the dispute window.

Not done here: the durable outbox (rounds/outbox.py) around the put and the transaction (crash safety).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..chain.typed_data import UpdateCommitment, sign_digest, update_commitment_digest
from ..envelope import seal, update_commitment
from ..envelope.envelope import SealedEnvelope
from ..envelope.manifest import DPRecord
from ..envelope.tensors import deserialize_tensors
from ..errors import LeptonError
from ..fl.training import TrainResult, plan_dp
from .report import content_digest, fetch_by_digest, publish

__all__ = ["ModelDigestMismatch", "Partner", "SignedCommitment", "Submission", "TrainingSettings", "recipient_keys"]


class ModelDigestMismatch(LeptonError, ValueError):
    """The fetched global model is not the one the round committed to on-chain."""


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
class SignedCommitment:
    """A partner's EIP-712-signed ``UpdateCommitment`` for the coordinator's batch, with its envelope's CID."""

    commitment: UpdateCommitment
    signature: bytes
    envelope_cid: str


def recipient_keys(deployment: Any, addresses: list[str]) -> list[bytes]:
    """The X25519 public keys the PartnerRegistry holds for `addresses` (coordinator, auditors...)."""
    return [bytes(deployment.partners.functions.partnerOf(a).call()[3]) for a in addresses]


def _train_task(model_bytes: bytes, data: Any, settings: TrainingSettings, delta: float, accountant: str) -> TrainResult:
    """Runs in a worker process: rebuilds the model from its safetensors bytes and trains it with DP-SGD."""
    from ..fl import build_model, train_local

    state = deserialize_tensors(model_bytes)
    model = build_model(settings.model, data.input_dim, data.num_classes, seed=0)
    model.load_state_dict(state)
    return train_local(
        model=model, data=data, epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr,
        max_grad_norm=settings.max_grad_norm, noise_multiplier=settings.noise_multiplier, delta=delta,
        accountant=accountant, seed=settings.seed, device="cpu",
    )  # fmt: skip


class Partner:
    """One partner: its Ethereum account (signs manifests and transactions), its data, its accountant.

    `tx` must hold the account's key; `executor` runs training (``workers.LocalExecutor`` or ``RayExecutor``).
    """

    def __init__(self, *, account: Any, tx: Any, deployment: Any, store: Any, accountant: Any, data: Any,
                 executor: Any, settings: TrainingSettings = TrainingSettings()) -> None:  # fmt: skip
        self.account, self.tx, self.deployment, self.store = account, tx, deployment, store
        self.accountant, self.data, self.executor, self.settings = accountant, data, executor, settings

    @property
    def address(self) -> str:
        return self.account.address

    # -- step 2 -----------------------------------------------------------------------------------------

    def fetch_model(self, agreement_id: int, round_id: int) -> tuple[bytes, bytes]:
        """The global model's bytes and the on-chain ``modelDigest`` they match.

        Raises:
            ArtifactNotFound: the store has no artifact with that digest.
            ModelDigestMismatch: the bytes do not hash to the digest (a store that lied).
        """
        digest = bytes(self.deployment.ledger.functions.round(agreement_id, round_id).call()[6])
        data = fetch_by_digest(self.store, digest)
        recomputed = content_digest(data)
        if recomputed != digest:
            raise ModelDigestMismatch(f"model bytes hash to 0x{recomputed.hex()}, round committed 0x{digest.hex()}")
        return data, digest

    def check_budget(self) -> int:
        """The cumulative epsilon (fixed point) after this round, checked against the cap before training.

        Raises:
            BudgetExceeded: the round would take the partner over its cap; nothing trains.
        """
        s = self.settings
        plan = plan_dp(sample_count=len(self.data), batch_size=s.batch_size, epochs=s.epochs,
                       delta=self.accountant.delta, max_grad_norm=s.max_grad_norm,
                       noise_multiplier=s.noise_multiplier, accountant=self.accountant.kind.value)  # fmt: skip
        return self.accountant.check_budget(plan.as_round())

    def train(self, model_bytes: bytes) -> TrainResult:
        """``fl.train_local`` in a worker of the executor."""
        future = self.executor.submit(_train_task, model_bytes, self.data, self.settings,
                                      self.accountant.delta, self.accountant.kind.value)  # fmt: skip
        return future.result()

    # -- step 3 -----------------------------------------------------------------------------------------

    def seal_update(self, result: TrainResult, *, agreement_id: int, round_id: int, base_model_digest: bytes,
                    recipients: list[bytes]) -> tuple[SealedEnvelope, str, bytes]:  # fmt: skip
        """Seals the update to `recipients` and puts it to the store: ``(sealed, cid, cid digest)``."""
        assert result.dp is not None
        cumulative = self.accountant.would_spend(result.dp.as_round())
        sealed = seal(
            result.delta, signer_key=bytes(self.account.key), recipients=recipients,
            chain_id=self.tx.w3.eth.chain_id, ledger=self.deployment.ledger.address, agreement_id=agreement_id,
            round=round_id, base_model_digest=base_model_digest, dp=DPRecord.from_params(result.dp),
            cumulative_epsilon=cumulative, sample_count=result.sample_count, metrics=result.metrics,
        )  # fmt: skip
        cid, digest = publish(self.store, sealed.data)
        return sealed, cid, digest

    # -- step 4 -----------------------------------------------------------------------------------------

    def commit(self, sealed: SealedEnvelope, envelope_digest: bytes, result: TrainResult) -> str:
        """``submitUpdate`` on-chain, then records the round in the accountant; returns the tx hash."""
        m = sealed.manifest
        receipt = self.tx.transact(
            self.deployment.ledger.functions.submitUpdate(
                m.agreement_id, m.round, envelope_digest, sealed.manifest_digest, m.cumulative_epsilon, m.sample_count
            ),
            self.address,
        )
        assert result.dp is not None
        recorded = self.accountant.record(result.dp.as_round())
        assert recorded == m.cumulative_epsilon, (recorded, m.cumulative_epsilon)
        return receipt["transactionHash"].to_0x_hex()

    def prepare_update(self, agreement_id: int, round_id: int, recipient_addresses: list[str]) -> tuple:
        """Steps 2-3: fetch, check the budget, train, seal, put: ``(sealed, cid, cid digest, train result)``."""
        model_bytes, model_digest = self.fetch_model(agreement_id, round_id)
        self.check_budget()
        result = self.train(model_bytes)
        recipients = recipient_keys(self.deployment, recipient_addresses)
        sealed, cid, digest = self.seal_update(result, agreement_id=agreement_id, round_id=round_id,
                                               base_model_digest=model_digest, recipients=recipients)  # fmt: skip
        return sealed, cid, digest, result

    def sign_commitment(self, sealed: SealedEnvelope, cid: str, envelope_digest: bytes,
                        result: TrainResult) -> SignedCommitment:  # fmt: skip
        """Step 4, batched: signs the ``UpdateCommitment`` and records the round in the accountant."""
        commitment = update_commitment(sealed, envelope_digest=envelope_digest)
        digest = update_commitment_digest(self.tx.w3.eth.chain_id, self.deployment.ledger.address, commitment)
        signature = sign_digest(bytes(self.account.key), digest)
        assert result.dp is not None
        self.accountant.record(result.dp.as_round())
        return SignedCommitment(commitment, signature, cid)

    def run_round_batched(self, agreement_id: int, round_id: int, recipient_addresses: list[str]) -> SignedCommitment:
        """Steps 2-4 in batched mode: the signed commitment, for the coordinator's ``anchor_batch``."""
        sealed, cid, digest, result = self.prepare_update(agreement_id, round_id, recipient_addresses)
        return self.sign_commitment(sealed, cid, digest, result)

    def run_round(self, agreement_id: int, round_id: int, recipient_addresses: list[str]) -> Submission:
        """Steps 2-4 for one round.

        Raises:
            BudgetExceeded: before training, when the round would exceed the partner's epsilon cap.
            ModelDigestMismatch, ArtifactNotFound: the global model cannot be fetched as committed.
            ContractReverted: the ledger refused the commitment.
        """
        sealed, cid, digest, result = self.prepare_update(agreement_id, round_id, recipient_addresses)
        tx_hash = self.commit(sealed, digest, result)
        m = sealed.manifest
        return Submission(cid, digest, sealed.manifest_digest, m.cumulative_epsilon, m.sample_count, tx_hash,
                          dict(result.metrics))  # fmt: skip

    # -- step 6 -----------------------------------------------------------------------------------------

    def claim(self, agreement_id: int, round_id: int, amount: int, proof: list[bytes]) -> str:
        """``RewardVault.claim`` with this partner's payout proof; returns the tx hash."""
        receipt = self.tx.transact(
            self.deployment.vault.functions.claim(agreement_id, round_id, amount, proof), self.address
        )
        return receipt["transactionHash"].to_0x_hex()

