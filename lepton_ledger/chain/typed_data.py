"""EIP-712 digests the contracts check signatures against, and signing them with a partner's key.

- :func:`update_commitment_digest` is ``RoundLedger.commitmentDigest``: what a partner signs for one update
  in the batched mode, under the domain ``("LeptonRoundLedger", "1", chainId, ledger)``.
  :func:`update_commitment_typed_data` gives it as ``eth_signTypedData_v4`` JSON, for wallets.
- :func:`sign_agreement_digest` is ``AgreementRegistry.signingDigest`` (with the nonce given): what a party
  signs for ``signBySig``, under ``("LeptonAgreementRegistry", "1", chainId, registry)``.
- :func:`terms_hash` is ``AgreementRegistry.hashTerms``: keccak256(abi.encode(Terms)).
- :func:`domain_separator` is OpenZeppelin ``EIP712._domainSeparatorV4``.

Digests bind the chain id and the contract's address, so a signature made for one deployment is worth
nothing on another.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, dataclass
from typing import Any

import coincurve
from eth_abi import encode
from eth_utils import keccak, to_checksum_address

from ..errors import LeptonError
from ._values import InvalidValue, as_address, as_bytes32, as_uint

__all__ = [
    "AGREEMENT_REGISTRY_NAME",
    "EIP712_DOMAIN_TYPEHASH",
    "ROUND_LEDGER_NAME",
    "SIGN_AGREEMENT_TYPEHASH",
    "TERMS_ABI_TYPE",
    "UPDATE_COMMITMENT_TYPEHASH",
    "SigningError",
    "UpdateCommitment",
    "address_of_key",
    "domain_separator",
    "sign_agreement_digest",
    "sign_agreement_typed_data",
    "sign_digest",
    "terms_hash",
    "typed_data_digest",
    "update_commitment_digest",
    "update_commitment_typed_data",
]

EIP712_DOMAIN_TYPEHASH = keccak(
    text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
_UPDATE_COMMITMENT_TYPE = (
    "UpdateCommitment(uint256 agreementId,uint64 round,address partner,bytes32 envelopeDigest,"
    "bytes32 manifestDigest,uint32 cumulativeEpsilon,uint64 sampleCount)"
)
_SIGN_AGREEMENT_TYPE = (
    "SignAgreement(uint256 agreementId,uint32 version,bytes32 termsHash,address party,uint256 nonce,uint256 deadline)"
)
UPDATE_COMMITMENT_TYPEHASH = keccak(text=_UPDATE_COMMITMENT_TYPE)
SIGN_AGREEMENT_TYPEHASH = keccak(text=_SIGN_AGREEMENT_TYPE)
#: The EIP-712 domain names the contracts pass to OpenZeppelin's EIP712 constructor.
ROUND_LEDGER_NAME = "LeptonRoundLedger"
AGREEMENT_REGISTRY_NAME = "LeptonAgreementRegistry"
#: IAgreementRegistry.Terms: termsDigest, parties, rewardToken, rewardPerRound, payoutRule, epsilonCap, delta,
#: requiredStake, start, end, maxRounds, coordinator, arbiter, maxSampleCount, coordinatorBond.
TERMS_ABI_TYPE = (
    "(bytes32,address[],address,uint256,uint8,uint32,uint64,uint256,uint64,uint64,uint32,address,address,uint64,"
    "uint256)"
)

_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class SigningError(LeptonError, ValueError):
    """A private key cannot sign (malformed key or digest)."""


@dataclass(frozen=True)
class UpdateCommitment:
    """``IRoundLedger.UpdateCommitment``: a partner's signed commitment to one update.

    `cumulative_epsilon` is fixed point with 1e6 = 1.0, the partner's epsilon under the agreement including
    this update. Values are checked against their Solidity types on construction.

    Raises (constructor):
        InvalidValue: a field does not fit its Solidity type.
    """

    agreement_id: int
    round: int
    partner: str
    envelope_digest: bytes
    manifest_digest: bytes
    cumulative_epsilon: int
    sample_count: int

    def __post_init__(self) -> None:
        # frozen: fields are normalised through object.__setattr__, once, here.
        object.__setattr__(self, "agreement_id", as_uint(self.agreement_id, 256, "agreement_id"))
        object.__setattr__(self, "round", as_uint(self.round, 64, "round"))
        object.__setattr__(self, "partner", as_address(self.partner, "partner"))
        object.__setattr__(self, "envelope_digest", as_bytes32(self.envelope_digest, "envelope_digest"))
        object.__setattr__(self, "manifest_digest", as_bytes32(self.manifest_digest, "manifest_digest"))
        object.__setattr__(self, "cumulative_epsilon", as_uint(self.cumulative_epsilon, 32, "cumulative_epsilon"))
        object.__setattr__(self, "sample_count", as_uint(self.sample_count, 64, "sample_count"))

    def as_tuple(self) -> tuple[int, int, str, bytes, bytes, int, int]:
        """The struct as a contract call takes it, fields in declaration order."""
        return astuple(self)

    def struct_hash(self) -> bytes:
        """``hashStruct(UpdateCommitment)`` of EIP-712."""
        return keccak(
            encode(
                ["bytes32", "uint256", "uint64", "address", "bytes32", "bytes32", "uint32", "uint64"],
                [UPDATE_COMMITMENT_TYPEHASH, *self.as_tuple()],
            )
        )


def domain_separator(name: str, chain_id: int, verifying_contract: str, version: str = "1") -> bytes:
    """OpenZeppelin ``EIP712._domainSeparatorV4`` of a contract deployed at `verifying_contract`.

    Raises:
        InvalidValue: `chain_id` is not a uint256 or `verifying_contract` not an address.
    """
    return keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                EIP712_DOMAIN_TYPEHASH,
                keccak(text=name),
                keccak(text=version),
                as_uint(chain_id, 256, "chain_id"),
                as_address(verifying_contract, "verifying_contract"),
            ],
        )
    )


def typed_data_digest(separator: bytes, struct_hash: bytes) -> bytes:
    """``MessageHashUtils.toTypedDataHash``: keccak256("\\x19\\x01" ++ domain separator ++ struct hash).

    Raises:
        InvalidValue: either input is not 32 bytes.
    """
    return keccak(b"\x19\x01" + as_bytes32(separator, "separator") + as_bytes32(struct_hash, "struct_hash"))


def update_commitment_digest(chain_id: int, ledger_address: str, commitment: UpdateCommitment) -> bytes:
    """``RoundLedger.commitmentDigest(commitment)`` of the ledger at `ledger_address` on `chain_id`.

    Raises:
        InvalidValue: `chain_id` or `ledger_address` is malformed.
    """
    separator = domain_separator(ROUND_LEDGER_NAME, chain_id, ledger_address)
    return typed_data_digest(separator, commitment.struct_hash())


def _typed_data(encoded_type: str, name: str, chain_id: int, contract: str, message: dict[str, Any]) -> dict[str, Any]:
    """``eth_signTypedData_v4`` JSON of `message` under the domain ``(name, "1", chain_id, contract)``, its type's
    members read from `encoded_type` (the string its typehash hashes), so the two cannot differ."""
    primary, _, members = encoded_type.rstrip(")").partition("(")
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            primary: [dict(zip(("type", "name"), member.split(" "), strict=True)) for member in members.split(",")],
        },
        "primaryType": primary,
        "domain": {
            "name": name,
            "version": "1",
            "chainId": as_uint(chain_id, 256, "chain_id"),
            "verifyingContract": as_address(contract, "verifyingContract"),
        },
        "message": message,
    }


def update_commitment_typed_data(chain_id: int, ledger_address: str, commitment: UpdateCommitment) -> dict[str, Any]:
    """The EIP-712 typed data (``eth_signTypedData_v4``'s JSON) whose digest is :func:`update_commitment_digest`,
    for wallets that sign typed data rather than digests.

    Raises:
        InvalidValue: `chain_id` or `ledger_address` is malformed.
    """
    c = commitment
    message = {
        "agreementId": c.agreement_id,
        "round": c.round,
        "partner": c.partner,
        "envelopeDigest": "0x" + c.envelope_digest.hex(),
        "manifestDigest": "0x" + c.manifest_digest.hex(),
        "cumulativeEpsilon": c.cumulative_epsilon,
        "sampleCount": c.sample_count,
    }
    return _typed_data(_UPDATE_COMMITMENT_TYPE, ROUND_LEDGER_NAME, chain_id, ledger_address, message)


def sign_agreement_digest(
    chain_id: int,
    registry_address: str,
    agreement_id: int,
    version: int,
    terms_hash: bytes,
    party: str,
    nonce: int,
    deadline: int,
) -> bytes:
    """The digest `party` signs so that anyone may relay ``AgreementRegistry.signBySig``; equal to
    ``signingDigest(agreementId, party, deadline)`` while ``nonces(party) == nonce``.

    Raises:
        InvalidValue: a value does not fit its Solidity type.
    """
    struct_hash = keccak(
        encode(
            ["bytes32", "uint256", "uint32", "bytes32", "address", "uint256", "uint256"],
            [
                SIGN_AGREEMENT_TYPEHASH,
                as_uint(agreement_id, 256, "agreement_id"),
                as_uint(version, 32, "version"),
                as_bytes32(terms_hash, "terms_hash"),
                as_address(party, "party"),
                as_uint(nonce, 256, "nonce"),
                as_uint(deadline, 256, "deadline"),
            ],
        )
    )
    return typed_data_digest(domain_separator(AGREEMENT_REGISTRY_NAME, chain_id, registry_address), struct_hash)


def sign_agreement_typed_data(
    chain_id: int,
    registry_address: str,
    agreement_id: int,
    version: int,
    terms_hash: bytes,
    party: str,
    nonce: int,
    deadline: int,
) -> dict[str, Any]:
    """The EIP-712 typed data (``eth_signTypedData_v4``'s JSON) whose digest is :func:`sign_agreement_digest`, for
    wallets that sign typed data rather than digests.

    Raises:
        InvalidValue: a value does not fit its Solidity type.
    """
    message = {
        "agreementId": as_uint(agreement_id, 256, "agreement_id"),
        "version": as_uint(version, 32, "version"),
        "termsHash": "0x" + as_bytes32(terms_hash, "terms_hash").hex(),
        "party": as_address(party, "party"),
        "nonce": as_uint(nonce, 256, "nonce"),
        "deadline": as_uint(deadline, 256, "deadline"),
    }
    return _typed_data(_SIGN_AGREEMENT_TYPE, AGREEMENT_REGISTRY_NAME, chain_id, registry_address, message)


def terms_hash(terms_tuple: Sequence[Any]) -> bytes:
    """``AgreementRegistry.hashTerms``: keccak256(abi.encode(terms)), `terms_tuple` in the field order of
    ``IAgreementRegistry.Terms`` (see :data:`TERMS_ABI_TYPE`).

    Raises:
        InvalidValue: not 15 fields, or a field does not fit its Solidity type.
    """
    if len(terms_tuple) != 15:
        raise InvalidValue(f"Terms has 15 fields, got {len(terms_tuple)}")
    (
        digest,
        parties,
        reward_token,
        reward_per_round,
        payout_rule,
        epsilon_cap,
        delta,
        stake,
        start,
        end,
        max_rounds,
        coordinator,
        arbiter,
        max_samples,
        bond,
    ) = terms_tuple
    normalised = (
        as_bytes32(digest, "termsDigest"),
        [as_address(p, f"parties[{i}]") for i, p in enumerate(parties)],
        as_address(reward_token, "rewardToken"),
        as_uint(reward_per_round, 256, "rewardPerRound"),
        as_uint(int(payout_rule), 8, "payoutRule"),
        as_uint(epsilon_cap, 32, "epsilonCap"),
        as_uint(delta, 64, "delta"),
        as_uint(stake, 256, "requiredStake"),
        as_uint(start, 64, "start"),
        as_uint(end, 64, "end"),
        as_uint(max_rounds, 32, "maxRounds"),
        as_address(coordinator, "coordinator"),
        as_address(arbiter, "arbiter"),
        as_uint(max_samples, 64, "maxSampleCount"),
        as_uint(bond, 256, "coordinatorBond"),
    )
    return keccak(encode([TERMS_ABI_TYPE], [normalised]))


def sign_digest(private_key: bytes, digest: bytes) -> bytes:
    """Signs a 32-byte digest as is (no EIP-191 prefix): 65 bytes r ++ s ++ v with v in {27, 28}, the form
    OpenZeppelin's ``ECDSA.recover`` and ``SignatureChecker`` take.

    Raises:
        SigningError: `private_key` is not a valid secp256k1 key (32 bytes, in range).
        InvalidValue: `digest` is not 32 bytes.
    """
    message_hash = as_bytes32(digest, "digest")
    # libsecp256k1 as is (the library eth_account signs with, through eth_keys): RFC 6979 nonces and low s, the
    # same 65 bytes (tests/chain/test_typed_data.py), without eth_account's wrapping (~0.17 -> ~0.07 ms).
    signed = coincurve.PrivateKey(_secret(private_key)).sign_recoverable(message_hash, hasher=None)
    return signed[:64] + bytes([27 + signed[64]])


def address_of_key(private_key: bytes) -> str:
    """The checksummed address of a secp256k1 private key (``Account.from_key(key).address``, without building an
    account: half the time).

    Raises:
        SigningError: `private_key` is not a valid secp256k1 key (32 bytes, in range).
    """
    public = coincurve.PublicKey.from_secret(_secret(private_key)).format(compressed=False)[1:]
    return to_checksum_address(keccak(public)[-20:])


def _secret(private_key: bytes) -> bytes:
    """`private_key` once it is a secp256k1 secret: 32 bytes in [1, n - 1] (eth_account takes even 0)."""
    try:
        key = as_bytes32(private_key, "private_key")
    except InvalidValue:
        raise SigningError("a private key is 32 bytes") from None
    if not 0 < int.from_bytes(key, "big") < _SECP256K1_N:
        raise SigningError("private key out of range for secp256k1")
    return key
