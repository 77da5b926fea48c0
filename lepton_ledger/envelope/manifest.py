"""The update manifest: what a partner states about one update, signed with its Ethereum key (EIP-712).

EIP-712 type (primary type ``UpdateManifest``), under the RoundLedger's domain
``EIP712Domain("LeptonRoundLedger", "1", chainId, verifyingContract = the ledger's address)``::

    UpdateManifest(uint16 formatVersion,uint256 agreementId,uint64 round,address partner,
                   bytes32 baseModelDigest,bytes32 tensorDigest,uint64 sampleCount,
                   uint32 cumulativeEpsilon,string cumulativeEpsilonFloat,string dpParams,string metrics)

(one line, no spaces, in the code). The **manifest digest** is the full EIP-712 digest
``keccak256(0x1901 ++ domainSeparator ++ hashStruct(manifest))`` -- the 32 bytes the partner signs (65-byte
r ++ s ++ v signature, v in {27, 28}) and the ``manifestDigest`` it commits on-chain in
``RoundLedger.submitUpdate`` / ``UpdateCommitment``. An auditor recomputes it from the envelope's manifest
document with any EIP-712 library (``eth_account.messages.encode_typed_data(full_message=...)`` does it:
see :meth:`UpdateManifest.typed_data`) and compares it with the chain.

Non-integers. Solidity has no floats, so every non-integer travels as a *string* member of the struct, which
EIP-712 hashes as keccak256 of its UTF-8 bytes:

- ``cumulativeEpsilonFloat``: Python ``repr`` of the float (shortest round-trip form). ``cumulativeEpsilon``
  is the on-chain fixed point (1e6 = 1.0, rounded up by ``accounting.epsilon_to_fixed``); opening checks
  the two agree.
- ``dpParams``: canonical JSON of ``{"accountant", "clippingNorm", "delta", "noiseMultiplier",
  "sampleRate", "steps"}``.
- ``metrics``: canonical JSON of ``{name: float}``.

Canonical JSON = ``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
allow_nan=False)``, floats as Python writes them. Verifiers never re-serialize to check a signature: they
hash the strings exactly as the envelope carries them. Opening does refuse a string that is not in canonical
form, so that one manifest has exactly one encoding (and one digest).

The manifest document stored in the envelope is the canonical JSON of ``{"domain": {...}, "message":
{...}}`` in EIP-712 JSON form (bytes32 as 0x-hex, addresses checksummed, integers as JSON numbers).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

from eth_abi import encode
from eth_keys import keys as _eth_keys
from eth_keys.exceptions import BadSignature as _EthKeysBadSignature
from eth_utils import keccak

from ..chain._values import InvalidValue, as_address, as_bytes32, as_uint, checksummed
from ..chain.typed_data import (
    ROUND_LEDGER_NAME,
    SigningError,
    address_of_key,
    domain_separator,
    sign_digest,
    typed_data_digest,
)
from ..protocol.errors import ProtocolError
from ..protocol.jsonio import load_object
from ..units import AccountantKind, epsilon_to_fixed
from .errors import BadSignature, InvalidKey, InvalidManifest, MalformedManifest

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_TYPES",
    "UPDATE_MANIFEST_TYPE",
    "UPDATE_MANIFEST_TYPEHASH",
    "DPRecord",
    "UpdateManifest",
    "canonical_json",
    "recover_signer",
]

#: Version of the manifest and of the envelope format; both change together.
FORMAT_VERSION = 1
MAX_MANIFEST_BYTES = 64 << 10  # an honest manifest is under 2 KB; a larger one is refused before it is parsed

_FIELDS: tuple[tuple[str, str], ...] = (
    ("uint16", "formatVersion"),
    ("uint256", "agreementId"),
    ("uint64", "round"),
    ("address", "partner"),
    ("bytes32", "baseModelDigest"),
    ("bytes32", "tensorDigest"),
    ("uint64", "sampleCount"),
    ("uint32", "cumulativeEpsilon"),
    ("string", "cumulativeEpsilonFloat"),
    ("string", "dpParams"),
    ("string", "metrics"),
)
UPDATE_MANIFEST_TYPE = "UpdateManifest(" + ",".join(f"{t} {n}" for t, n in _FIELDS) + ")"
UPDATE_MANIFEST_TYPEHASH = keccak(text=UPDATE_MANIFEST_TYPE)
# hashStruct's ABI types: the typehash, then the fields with each string as the keccak of its bytes.
_STRUCT_TYPES = ["bytes32"] + [("bytes32" if t == "string" else t) for t, _ in _FIELDS]
#: The ``types`` member of the EIP-712 JSON form, for eth_account and wallets.
MANIFEST_TYPES: dict[str, list[dict[str, str]]] = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "UpdateManifest": [{"name": n, "type": t} for t, n in _FIELDS],
}
_SECP256K1_HALF_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141 // 2


def canonical_json(value: object) -> str:
    """The one JSON text of `value` this format accepts (sorted keys, no spaces, ASCII, finite floats).

    Raises:
        ValueError: `value` holds NaN or an infinity (json's own error).
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _finite(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidManifest(f"{name} must be a number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise InvalidManifest(f"{name} must be finite, got {value!r}")
    return out


class DPParamsLike(Protocol):
    """What :meth:`DPRecord.from_params` reads: ``fl.training.DPParams``'s names (the envelope does not load fl)."""

    @property
    def noise_multiplier(self) -> float: ...

    @property
    def max_grad_norm(self) -> float: ...

    @property
    def sample_rate(self) -> float: ...

    @property
    def steps(self) -> int: ...

    @property
    def delta(self) -> float: ...

    @property
    def accountant(self) -> str: ...


@dataclass(frozen=True)
class DPRecord:
    """The DP parameters a round used, as the manifest records them (``training.DPParams`` minus what does
    not enter the accounting).

    Raises (constructor):
        InvalidManifest: a value is non-finite, negative where it cannot be, or the accountant is unknown.
    """

    noise_multiplier: float
    clipping_norm: float
    sample_rate: float
    steps: int
    delta: float
    accountant: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "noise_multiplier", _finite(self.noise_multiplier, "noise_multiplier"))
        object.__setattr__(self, "clipping_norm", _finite(self.clipping_norm, "clipping_norm"))
        object.__setattr__(self, "sample_rate", _finite(self.sample_rate, "sample_rate"))
        object.__setattr__(self, "delta", _finite(self.delta, "delta"))
        if self.noise_multiplier < 0 or self.clipping_norm <= 0:
            raise InvalidManifest("noise_multiplier must be >= 0 and clipping_norm > 0")
        if not 0 < self.sample_rate <= 1 or not 0 < self.delta < 1:
            raise InvalidManifest("sample_rate must lie in (0, 1] and delta in (0, 1)")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise InvalidManifest(f"steps must be a non-negative int, got {self.steps!r}")
        try:
            object.__setattr__(self, "accountant", AccountantKind.parse(self.accountant).value)
        except ValueError as exc:
            raise InvalidManifest(f"unknown accountant {self.accountant!r}") from exc

    @classmethod
    def from_params(cls, params: DPParamsLike) -> DPRecord:
        """From a ``training.DPParams`` (or anything with its attribute names).

        Raises:
            InvalidManifest: as the constructor.
        """
        return cls(
            params.noise_multiplier,
            params.max_grad_norm,
            params.sample_rate,
            params.steps,
            params.delta,
            params.accountant,
        )

    def to_json(self) -> str:
        """Canonical JSON: the ``dpParams`` string of the typed struct."""
        return canonical_json(
            {
                "accountant": self.accountant,
                "clippingNorm": self.clipping_norm,
                "delta": self.delta,
                "noiseMultiplier": self.noise_multiplier,
                "sampleRate": self.sample_rate,
                "steps": self.steps,
            }
        )


@dataclass(frozen=True)
class UpdateManifest:
    """One partner's signed statement about one update; see the module docstring for the encoding.

    `chain_id` and `ledger` are the EIP-712 domain (the RoundLedger deployment), not struct members.

    Raises (constructor):
        InvalidManifest: a field does not fit its type (addresses, bytes32, uint widths, finite floats,
            fixed-point epsilon not ``epsilon_to_fixed(cumulative_epsilon_float)``).
    """

    chain_id: int
    ledger: str
    agreement_id: int
    round: int
    partner: str
    base_model_digest: bytes
    tensor_digest: bytes
    sample_count: int
    cumulative_epsilon: int  # fixed point, 1e6 = 1.0, as committed on-chain
    cumulative_epsilon_float: float
    dp: DPRecord
    metrics: Mapping[str, float] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "chain_id", as_uint(self.chain_id, 256, "chain_id"))
            object.__setattr__(self, "ledger", as_address(self.ledger, "ledger"))
            object.__setattr__(self, "agreement_id", as_uint(self.agreement_id, 256, "agreement_id"))
            object.__setattr__(self, "round", as_uint(self.round, 64, "round"))
            object.__setattr__(self, "partner", as_address(self.partner, "partner"))
            object.__setattr__(
                self,
                "base_model_digest",
                as_bytes32(self.base_model_digest, "base_model_digest"),
            )
            object.__setattr__(self, "tensor_digest", as_bytes32(self.tensor_digest, "tensor_digest"))
            object.__setattr__(self, "sample_count", as_uint(self.sample_count, 64, "sample_count"))
            object.__setattr__(
                self,
                "cumulative_epsilon",
                as_uint(self.cumulative_epsilon, 32, "cumulative_epsilon"),
            )
            object.__setattr__(
                self,
                "format_version",
                as_uint(self.format_version, 16, "format_version"),
            )
        except InvalidValue as exc:
            raise InvalidManifest(str(exc)) from exc
        eps = _finite(self.cumulative_epsilon_float, "cumulative_epsilon_float")
        object.__setattr__(self, "cumulative_epsilon_float", eps)
        # The fixed point is what the chain checks against the cap; it must be the float rounded up, or the
        # budget on-chain and the epsilon an auditor recomputes could disagree.
        if eps < 0 or epsilon_to_fixed(eps) != self.cumulative_epsilon:
            raise InvalidManifest(f"cumulative_epsilon {self.cumulative_epsilon} is not epsilon_to_fixed({eps!r})")
        if not isinstance(self.dp, DPRecord):
            raise InvalidManifest("dp must be a DPRecord")
        if not isinstance(self.metrics, Mapping) or not all(isinstance(k, str) for k in self.metrics):
            raise InvalidManifest("metrics must map str to numbers")
        object.__setattr__(
            self,
            "metrics",
            {k: _finite(v, f"metrics[{k!r}]") for k, v in self.metrics.items()},
        )

    # -- EIP-712 ------------------------------------------------------------------------------------------

    def message(self) -> dict[str, Any]:
        """The struct in EIP-712 JSON form (bytes32 as 0x-hex)."""
        return {
            "formatVersion": self.format_version,
            "agreementId": self.agreement_id,
            "round": self.round,
            "partner": self.partner,
            "baseModelDigest": "0x" + self.base_model_digest.hex(),
            "tensorDigest": "0x" + self.tensor_digest.hex(),
            "sampleCount": self.sample_count,
            "cumulativeEpsilon": self.cumulative_epsilon,
            "cumulativeEpsilonFloat": repr(self.cumulative_epsilon_float),
            "dpParams": self.dp.to_json(),
            "metrics": canonical_json(dict(self.metrics)),
        }

    def domain(self) -> dict[str, Any]:
        """The RoundLedger's EIP-712 domain in JSON form."""
        return {
            "name": ROUND_LEDGER_NAME,
            "version": "1",
            "chainId": self.chain_id,
            "verifyingContract": self.ledger,
        }

    def typed_data(self) -> dict[str, Any]:
        """The full EIP-712 message (types, primaryType, domain, message) as wallets and eth_account take it."""
        return {
            "types": MANIFEST_TYPES,
            "primaryType": "UpdateManifest",
            "domain": self.domain(),
            "message": self.message(),
        }

    def struct_hash(self) -> bytes:
        """``hashStruct(UpdateManifest)``."""
        m = self.message()
        values = [
            self.format_version,
            self.agreement_id,
            self.round,
            self.partner,
            self.base_model_digest,
            self.tensor_digest,
            self.sample_count,
            self.cumulative_epsilon,
            keccak(text=m["cumulativeEpsilonFloat"]),
            keccak(text=m["dpParams"]),
            keccak(text=m["metrics"]),
        ]
        return keccak(encode(_STRUCT_TYPES, [UPDATE_MANIFEST_TYPEHASH, *values]))

    def digest(self) -> bytes:
        """The manifest digest: the full EIP-712 digest, signed by the partner and committed on-chain."""
        return typed_data_digest(_round_ledger_domain(self.chain_id, self.ledger), self.struct_hash())

    def sign(self, private_key: bytes) -> bytes:
        """65-byte signature (r ++ s ++ v) of :meth:`digest` by `private_key`.

        Raises:
            InvalidKey: the key is malformed or is not the key of :attr:`partner`.
        """
        try:
            address = address_of_key(private_key)
        except SigningError as exc:
            raise InvalidKey("not a secp256k1 private key") from exc
        if address != self.partner:
            raise InvalidKey(f"the signing key is {address}'s, the manifest's partner is {self.partner}")
        return sign_digest(private_key, self.digest())  # the key was found valid above

    # -- document -----------------------------------------------------------------------------------------

    def to_document(self) -> bytes:
        """The manifest as stored in the envelope: canonical JSON of ``{"domain", "message"}``, UTF-8."""
        return canonical_json({"domain": self.domain(), "message": self.message()}).encode("ascii")

    @classmethod
    def from_document(cls, document: bytes) -> UpdateManifest:
        """Parses a manifest document, refusing anything but the canonical encoding of a valid manifest.

        Raises:
            MalformedManifest: not JSON, wrong domain, missing or extra fields, wrong types, non-canonical
                strings, or values out of range.
        """
        try:
            if not document.isascii():
                raise MalformedManifest("manifest document is not ASCII")
            doc = load_object(document, what="manifest", max_bytes=MAX_MANIFEST_BYTES, max_depth=3)
            domain, message = doc["domain"], doc["message"]
            if set(doc) != {"domain", "message"} or set(message) != {n for _, n in _FIELDS}:
                raise MalformedManifest("manifest document has missing or extra fields")
            if (domain.get("name"), domain.get("version"), set(domain)) != (
                ROUND_LEDGER_NAME,
                "1",
                {"name", "version", "chainId", "verifyingContract"},
            ):
                raise MalformedManifest("manifest domain is not the RoundLedger's")
            dp_doc = load_object(
                message["dpParams"].encode(), what="dpParams", max_bytes=MAX_MANIFEST_BYTES, max_depth=1
            )
            metrics = load_object(
                message["metrics"].encode(), what="metrics", max_bytes=MAX_MANIFEST_BYTES, max_depth=1
            )
            if set(dp_doc) != {
                "accountant",
                "clippingNorm",
                "delta",
                "noiseMultiplier",
                "sampleRate",
                "steps",
            }:
                raise MalformedManifest("dpParams has missing or extra fields")
            for name in (
                "formatVersion",
                "agreementId",
                "round",
                "sampleCount",
                "cumulativeEpsilon",
            ):
                if type(message[name]) is not int:
                    raise MalformedManifest(f"{name} must be an integer")
            eps_text = message["cumulativeEpsilonFloat"]
            if not isinstance(eps_text, str):
                raise MalformedManifest("cumulativeEpsilonFloat must be a string")
            manifest = cls(
                chain_id=domain["chainId"],
                ledger=domain["verifyingContract"],
                agreement_id=message["agreementId"],
                round=message["round"],
                partner=message["partner"],
                base_model_digest=message["baseModelDigest"],
                tensor_digest=message["tensorDigest"],
                sample_count=message["sampleCount"],
                cumulative_epsilon=message["cumulativeEpsilon"],
                cumulative_epsilon_float=float(eps_text),
                dp=DPRecord(
                    dp_doc["noiseMultiplier"],
                    dp_doc["clippingNorm"],
                    dp_doc["sampleRate"],
                    dp_doc["steps"],
                    dp_doc["delta"],
                    dp_doc["accountant"],
                ),
                metrics=metrics,
                format_version=message["formatVersion"],
            )
        except MalformedManifest:
            raise
        except (
            InvalidManifest,
            ProtocolError,
            ValueError,
            KeyError,
            TypeError,
            AttributeError,
        ) as exc:
            raise MalformedManifest(f"manifest does not parse: {exc!r}") from None
        # One manifest, one encoding: the signed strings must be exactly what we would have written, or two
        # documents could carry the same update under different digests.
        if manifest.to_document() != document:
            raise MalformedManifest("manifest document is not in canonical form")
        return manifest


@lru_cache(maxsize=64)
def _round_ledger_domain(chain_id: int, ledger: str) -> bytes:
    # One deployment's separator serves every manifest of an audit: worked out once (a manifest's fields are
    # already checked, so the arguments are an int and a checksummed address).
    return domain_separator(ROUND_LEDGER_NAME, chain_id, ledger)


def recover_signer(digest: bytes, signature: bytes) -> str:
    """The checksummed address that signed `digest`, with OpenZeppelin ``ECDSA.recover``'s rules
    (65 bytes, v in {27, 28}, s in the lower half of the curve order).

    Raises:
        BadSignature: the signature is malformed or recovers no key.
    """
    if not isinstance(signature, (bytes, bytearray)) or len(signature) != 65:
        raise BadSignature("a signature is 65 bytes r ++ s ++ v")
    r, s, v = (
        int.from_bytes(signature[:32], "big"),
        int.from_bytes(signature[32:64], "big"),
        signature[64],
    )
    # High-s signatures are the malleable twin of a valid one; OpenZeppelin refuses them, so do we.
    if v not in (27, 28) or s > _SECP256K1_HALF_N or r == 0 or s == 0:
        raise BadSignature("signature has v not in {27, 28} or s in the upper half")
    try:
        public_key = _eth_keys.Signature(vrs=(v - 27, r, s)).recover_public_key_from_msg_hash(digest)
    except (_EthKeysBadSignature, ValueError) as exc:
        raise BadSignature(f"signature recovers no key: {exc}") from None
    return checksummed(public_key.to_address())
