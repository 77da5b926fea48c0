"""``GET /v1/rewards/{agreement}/{round}/{partner}``: a partner's payout in a finalized round and its Merkle
proof, re-built from the round's report and checked against the on-chain root (``rounds.roles.payout_tree``)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from ...chain.state import Allocation
from ...rounds.roles import payout_tree
from ...units import RoundStatus
from ..deps import AddressPath, Caller, ServiceDep, require_self_or_overseer, round_of
from ..errors import conflict, not_found, responses
from .agreements import AgreementId, RoundId

router = APIRouter(prefix="/v1/rewards", tags=["rewards"])


class Reward(BaseModel):
    agreement_id: int
    round: int
    partner: str
    amount: str
    proof: list[str]
    root: str
    claimed: bool
    claimable_at: int


@router.get(
    "/{agreement_id}/{round_id}/{address}",
    operation_id="reward_get",
    response_model=Reward,
    responses=responses(401, 403, 404, 409, 503),
)
def get_reward(
    agreement_id: AgreementId, round_id: RoundId, address: AddressPath, caller: Caller, service: ServiceDep
) -> Reward:
    """What `RewardVault.claim` needs: the amount and the proof (404: no such round, or no payout to the partner;
    409: the round is not finalized). A partner sees only its own."""
    require_self_or_overseer(caller, address)
    reads = service.reads
    if round_of(service, agreement_id, round_id)["record"].status is not RoundStatus.FINALIZED:
        raise conflict(f"round {round_id} of agreement {agreement_id} is not finalized", code="RoundNotFinalized")
    tree = reads.cached(
        ("payouts", agreement_id, round_id),
        lambda: payout_tree(service.deployment, service.store, agreement_id, round_id),
    )
    if tree is None or address not in tree.payouts:
        raise not_found(f"{address} has no payout in round {round_id} of agreement {agreement_id}")

    def vault_state() -> tuple[bool, int]:
        vault = service.deployment.vault.functions
        return (
            bool(vault.hasClaimed(agreement_id, round_id, address).call()),
            Allocation.read(vault.allocation(agreement_id, round_id)).claimable_at,
        )

    claimed, claimable_at = reads.cached(("claim", agreement_id, round_id, address), vault_state)
    return Reward(
        agreement_id=agreement_id,
        round=round_id,
        partner=address,
        amount=str(tree.amount(address)),
        proof=["0x" + p.hex() for p in tree.proof(address)],
        root="0x" + tree.root.hex(),
        claimed=claimed,
        claimable_at=claimable_at,
    )
