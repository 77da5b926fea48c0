"""``GET /v1/partners/{address}``: a registered account and its standing in each agreement it is party to;
``GET /v1/partners/{address}/key``: the X25519 key it registered, which parties seal their updates to;
``POST /v1/partners/{address}/approve``: the service's coordinator approves it, as ``coordinator approve``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from ...chain.state import Partner as PartnerRecord
from ...rounds.coordinator_steps import approve_partner
from ...rounds.roles import standing
from ...units import EPSILON_SCALE, PartnerStatus
from ..deps import AddressPath, Caller, ServiceDep, require_coordinator, require_self_or_overseer
from ..errors import conflict, forbidden, not_found, responses
from .coordination import IdempotencyKey, sent, step

router = APIRouter(prefix="/v1/partners", tags=["partners"])


class UnreadableRound(BaseModel):
    round: int
    error: str = Field(description="Why its report gives no payouts (missing from the store, malformed...).")


class AgreementStanding(BaseModel):
    agreement_id: int
    epsilon: float
    epsilon_cap: float
    stake: str
    required_stake: str
    claimable: str
    claimed: str
    unreadable_rounds: list[UnreadableRound] = Field(
        default=[], description="Finalized rounds whose report cannot be read: they count in neither reward."
    )


class Partner(BaseModel):
    address: str
    status: str
    registered_at: int
    profile_digest: str
    encryption_key: str
    roles: list[str]
    agreements: list[AgreementStanding]


@router.get("/{address}", operation_id="partner_get", response_model=Partner, responses=responses(401, 403, 404, 503))
def get_partner(address: AddressPath, caller: Caller, service: ServiceDep) -> Partner:
    """The registry's record of `address` and, for every agreement it is party to, its on-chain epsilon against
    the cap, its stake, and its rewards claimable and claimed (token amounts in the smallest unit, as strings);
    a finalized round whose report cannot be read is named in its agreement's row, never the whole answer's 422.
    A partner sees only itself; the coordinator and auditors see everyone."""
    require_self_or_overseer(caller, address)
    reads = service.reads
    record = reads.partner(address)
    if record.status is PartnerStatus.NONE:
        raise not_found(f"{address} is not registered")

    def standings() -> list[AgreementStanding]:
        found = []
        for agreement_id in range(1, reads.agreement_count() + 1):
            agreement = reads.agreement(agreement_id)
            if agreement is None or address not in agreement["terms"].parties:
                continue
            unreadable: list[UnreadableRound] = []
            held = standing(
                service.deployment,
                service.store,
                agreement_id,
                address,
                reads.now(),
                on_unreadable=lambda n, exc: unreadable.append(
                    UnreadableRound(round=n, error=f"{type(exc).__name__}: {exc}")
                ),
            )
            found.append(
                AgreementStanding(
                    agreement_id=agreement_id,
                    epsilon=held.epsilon_fixed / EPSILON_SCALE,
                    epsilon_cap=held.epsilon_cap_fixed / EPSILON_SCALE,
                    stake=str(held.stake),
                    required_stake=str(held.required_stake),
                    claimable=str(held.claimable),
                    claimed=str(held.claimed),
                    unreadable_rounds=unreadable,
                )
            )
        return found

    return Partner(
        address=address,
        status=record.status.name.lower(),
        registered_at=record.registered_at,
        profile_digest="0x" + record.profile_digest.hex(),
        encryption_key="0x" + record.encryption_key.hex(),
        roles=reads.roles(address).names(),
        agreements=reads.cached(("standings", address), standings),
    )


class EncryptionKey(BaseModel):
    address: str
    status: str
    encryption_key: str = Field(description="X25519 public key, 0x-hex (32 bytes).")


@router.get("/{address}/key", operation_id="partner_key", response_model=EncryptionKey, responses=responses(404, 503))
def get_key(address: AddressPath, service: ServiceDep) -> EncryptionKey:
    """The X25519 key the registry holds for `address` (the coordinator's, an auditor's...), to seal an update
    to. Anyone may read it, as anyone reads it on-chain; 404 when `address` is not registered."""
    record = service.reads.partner(address)
    if record.status is PartnerStatus.NONE:
        raise not_found(f"{address} is not registered")
    return EncryptionKey(
        address=address, status=record.status.name.lower(), encryption_key="0x" + record.encryption_key.hex()
    )


class Approved(BaseModel):
    address: str
    status: str
    tx_hash: str
    block_number: int


@router.post(
    "/{address}/approve",
    operation_id="partner_approve",
    response_model=Approved,
    responses=responses(401, 403, 404, 409),
)
def approve(address: AddressPath, caller: Caller, service: ServiceDep, idempotency_key: IdempotencyKey) -> Approved:
    """Sends ``PartnerRegistry.approve(address)`` from the service's coordinator (the caller), as ``coordinator
    approve`` does: 403 unless it also holds the registry's REGISTRAR_ROLE, 404 for an account not registered,
    409 ``PartnerNotPending`` for one not awaiting approval (approved or suspended)."""
    from ...chain.deployment import REGISTRAR_ROLE

    require_coordinator(service, caller)
    partners = service.deployment.partners.functions
    if not partners.hasRole(REGISTRAR_ROLE, caller.address).call():
        raise forbidden(f"{caller.address} lacks the PartnerRegistry's REGISTRAR_ROLE: only the registrar approves")

    def send() -> dict[str, Any]:  # checked in here: a retry with the same key answers the first answer
        status = PartnerRecord.read(partners.partnerOf(address)).status
        if status is PartnerStatus.NONE:
            raise not_found(f"{address} is not registered")
        if status is not PartnerStatus.PENDING:
            raise conflict(
                f"{address} is not awaiting approval (it is {status.name.lower()})", code="PartnerNotPending"
            )
        receipt = approve_partner(service.coordinator_session(), address)
        return {
            "address": address,
            "status": "approved",
            **sent(receipt),
        }

    return Approved.model_validate(step(service, caller, idempotency_key, f"approve/{address}", b"", send))
