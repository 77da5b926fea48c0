"""The dependencies routes share (``Annotated``, so tests and other apps may override them)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Path, Request

from ..chain._values import InvalidValue, as_address
from ..units import RoundStatus
from .errors import ApiError, conflict, forbidden, not_found
from .readmodel import Roles
from .service import Service


async def get_service(request: Request) -> Service:
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]


def get_caller(service: ServiceDep, authorization: Annotated[str | None, Header()] = None) -> Roles:
    """The signed-in caller and its roles at the latest block (401 without a valid token). A suspended partner
    holds no role but "partner:suspended" until the registry says otherwise."""
    return service.reads.roles(service.auth.address_of(authorization))


Caller = Annotated[Roles, Depends(get_caller)]


def checked_address(value: str, what: str = "address") -> str:
    """The checksummed address, or a 422 naming `what`."""
    try:
        return as_address(value, what)
    except InvalidValue as exc:
        raise ApiError(422, "Malformed", str(exc)) from None


# The shape of an address in the schema; a mixed-case one must also carry its EIP-55 checksum (checked_address).
ADDRESS_PATTERN = "^0x[0-9a-fA-F]{40}$"


def path_address(
    address: Annotated[str, Path(pattern=ADDRESS_PATTERN, description="An account, 0x-hex (any case).")],
) -> str:
    return checked_address(address)


AddressPath = Annotated[str, Depends(path_address)]


def require_self_or_overseer(caller: Roles, address: str) -> None:
    """A partner sees only its own standing and rewards; the coordinator and auditors see everyone's."""
    if caller.address != address and not (caller.coordinator or caller.auditor):
        raise forbidden(f"{caller.address} may not act for {address}: a partner acts only for itself")


def coordinator_key(service: Service) -> Any:
    """The service's coordinator identity; 503 when it was started without one."""
    if service.coordinator is None:
        raise ApiError(503, "NoCoordinatorKey", "this service holds no coordinator key (LEPTON_API_COORDINATOR_KEY)")
    return service.coordinator


def require_coordinator(service: Service, caller: Roles, agreement_id: int | None = None) -> Any:
    """The service's coordinator identity once `caller` is it (and, given `agreement_id`, that agreement's
    coordinator): 403 otherwise, 404 for no agreement, then 503 when the service holds no coordinator key (a
    caller who is not the coordinator is refused first, whatever keys the service holds)."""
    if agreement_id is None:
        if not caller.coordinator:
            raise forbidden(f"{caller.address} holds no coordinator role")
    else:
        coordinator = agreement_of(service, agreement_id)["state"].coordinator
        if caller.address != coordinator:
            raise forbidden(f"only the agreement's coordinator ({coordinator}) acts on agreement {agreement_id}")
    identity = coordinator_key(service)
    if caller.address != identity.address:
        raise forbidden(f"only the service's coordinator ({identity.address}) acts through this service")
    return identity


def agreement_of(service: Service, agreement_id: int) -> dict[str, Any]:
    """The read model's agreement; 404 when there is none."""
    found = service.reads.agreement(agreement_id)
    if found is None:
        raise not_found(f"no agreement {agreement_id}")
    return found


def round_of(service: Service, agreement_id: int, round_id: int, *, open_only: bool = False) -> dict[str, Any]:
    """The read model's round; 404 when there is none, 409 when `open_only` and it is not open."""
    found = service.reads.round(agreement_id, round_id)
    if found is None:
        raise not_found(f"agreement {agreement_id} has no round {round_id}")
    if open_only and found["record"].status is not RoundStatus.OPEN:
        raise conflict(f"round {round_id} of agreement {agreement_id} is not open", code="RoundNotOpen")
    return found
