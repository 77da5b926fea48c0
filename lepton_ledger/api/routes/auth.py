"""Sign-in: ``POST /v1/auth/nonce`` gives an EIP-4361 message to sign, ``POST /v1/auth/login`` trades the
signature for a bearer token, ``GET /v1/auth/me`` says who the token is and what the chain says it may do,
``POST /v1/auth/logout`` revokes the token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel, Field

from ..deps import ADDRESS_PATTERN, Caller, ServiceDep, checked_address
from ..errors import responses

router = APIRouter(prefix="/v1/auth", tags=["auth"])


class NonceRequest(BaseModel):
    address: str = Field(pattern=ADDRESS_PATTERN, examples=["0x90F79bf6EB2c4f870365E785982E1f101E93b906"])


class NonceResponse(BaseModel):
    message: str = Field(description="The EIP-4361 message to sign (personal_sign), exactly as given.")
    nonce: str
    expires_at: float


class LoginRequest(BaseModel):
    message: str
    signature: str = Field(description="0x-hex signature of the message (EIP-191 personal_sign).")


class LoginResponse(BaseModel):
    token: str = Field(description="Send as `Authorization: Bearer <token>`.")
    address: str
    expires_at: float


class LoggedOut(BaseModel):
    address: str = Field(description="The address the revoked token signed in.")


class Me(BaseModel):
    address: str
    roles: list[str] = Field(description="partner:<registry status>, and coordinator, auditor, admin when held.")
    agreements: dict[str, list[str]] = Field(description="Agreement id -> party, coordinator, arbiter.")


@router.post("/nonce", operation_id="auth_nonce", response_model=NonceResponse, responses=responses(429))
def nonce(body: NonceRequest, request: Request, service: ServiceDep) -> NonceResponse:
    """A sign-in message for `address`, valid for five minutes and usable once (429 while the address, or the
    client, holds too many unused ones)."""
    client = request.client.host if request.client else ""
    issued = service.auth.issue_message(checked_address(body.address), client)
    return NonceResponse(message=issued.message, nonce=issued.nonce, expires_at=issued.expires_at)


@router.post("/login", operation_id="auth_login", response_model=LoginResponse, responses=responses(401))
def login(body: LoginRequest, service: ServiceDep) -> LoginResponse:
    """A bearer token for the address that signed an issued message (401: malformed, other domain or chain,
    unknown, used or expired message, wrong signature)."""
    session = service.auth.login(body.message, body.signature)
    return LoginResponse(token=session.token, address=session.address, expires_at=session.expires_at)


@router.post("/logout", operation_id="auth_logout", response_model=LoggedOut, responses=responses(401))
def logout(service: ServiceDep, authorization: Annotated[str | None, Header()] = None) -> LoggedOut:
    """Revokes the caller's bearer token: it signs nobody in from now on (401: no token, or an unknown or expired
    one). An address holds at most a few live tokens: a login beyond them revokes its oldest."""
    return LoggedOut(address=service.auth.logout(authorization))


@router.get("/me", operation_id="auth_me", response_model=Me, responses=responses(401, 503))
def me(caller: Caller, service: ServiceDep) -> Me:
    """The signed-in address and its roles on the chain at the latest block, in the registry and per agreement."""
    return Me(address=caller.address, roles=caller.names(), agreements=service.reads.agreement_roles(caller.address))
