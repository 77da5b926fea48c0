"""What only its signer may send: the service prepares the unsigned transaction and, once the signer has signed
it, relays it. Relayed only when the signer is the signed-in caller, the target and selector are allow-listed
and an ``eth_call`` of it succeeds, so a refused transaction never reaches the chain."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_utils import function_abi_to_4byte_selector, keccak
from hexbytes import HexBytes
from web3.exceptions import ContractCustomError, ContractLogicError, Web3Exception

from ..chain.transactions import Transactor, decode_revert
from ..errors import ChainError
from .errors import ApiError, conflict, forbidden

# Contract -> the functions its parties call with their own key (not the coordinator's steps, which the service
# sends itself). The reward token's approve is allowed only towards the vault (stake and fund pull from it).
ALLOWED = {
    "PartnerRegistry": ("register", "rotateEncryptionKey", "updateProfile"),
    "AgreementRegistry": ("sign", "exit"),
    "RewardVault": ("stake", "unstake", "claim", "fund"),
    "RoundLedger": (
        "submitUpdate",
        "challenge",
        "resolveChallenge",
        "lapseChallenge",
        "disputeBatchEntry",
        "proveForgedCommitment",
    ),
    "RewardToken": ("approve",),
}


@dataclass(frozen=True)
class Target:
    contract: str
    function: str
    bound: Any  # the web3 contract


def _contracts(service: Any) -> dict[str, Any]:
    d = service.deployment
    bound = {
        "PartnerRegistry": d.partners,
        "AgreementRegistry": d.agreements,
        "RewardVault": d.vault,
        "RoundLedger": d.ledger,
    }
    token = service.document.get("reward_token")
    if token:
        from ..chain.artifacts import load_artifact

        bound["RewardToken"] = service.w3.eth.contract(address=token, abi=load_artifact("LeptonToken").abi)
    return bound


def allow_list(service: Any) -> dict[tuple[str, bytes], Target]:
    """``{(address, selector): Target}`` of every relayable call."""
    allowed: dict[tuple[str, bytes], Target] = {}
    for name, contract in _contracts(service).items():
        for item in contract.abi:
            if item.get("type") == "function" and item["name"] in ALLOWED[name]:
                selector = bytes(function_abi_to_4byte_selector(item))
                allowed[(contract.address, selector)] = Target(name, item["name"], contract)
    return allowed


def prepare(service: Any, caller: str, contract: str, function: str, args: list[Any]) -> dict[str, Any]:
    """The unsigned EIP-1559 transaction of `contract.function(*args)` from `caller`, gas estimated.

    Raises:
        ApiError: 422 for an unknown or not allow-listed function, or arguments that do not encode.
        ContractReverted: the contract would refuse it (409).
    """
    bound = _contracts(service).get(contract)
    if bound is None or function not in ALLOWED.get(contract, ()):
        known = ", ".join(f"{c}.{f}" for c, fs in ALLOWED.items() for f in fs)
        raise ApiError(422, "NotRelayable", f"{contract}.{function} is not relayed by this service; it relays {known}")
    try:
        data = bound.encode_abi(function, args=args)
    except (TypeError, ValueError, Web3Exception):  # MismatchedABI: no overload takes these arguments
        signatures = " or ".join(
            f"{function}({','.join(i['type'] for i in item['inputs'])})"
            for item in bound.abi
            if item.get("type") == "function" and item["name"] == function
        )
        raise ApiError(422, "Malformed", f"the arguments do not fit {contract}.{signatures}") from None
    w3 = service.w3
    call = {"from": caller, "to": bound.address, "data": data, "value": 0}
    try:
        gas = int(w3.eth.estimate_gas(call))
    except (ContractCustomError, ContractLogicError) as exc:
        raise decode_revert(getattr(exc, "data", None)) or ApiError(409, "Reverted", str(exc)) from None
    base = int(w3.eth.get_block("latest")["baseFeePerGas"])
    tip = int(w3.eth.max_priority_fee)
    return {
        "type": 2,
        "chainId": service.chain_id,
        "from": caller,
        "to": bound.address,
        "data": data,
        "value": 0,
        "nonce": int(w3.eth.get_transaction_count(caller, "pending")),
        "gas": gas * 5 // 4,
        "maxPriorityFeePerGas": tip,
        "maxFeePerGas": 2 * base + tip,
    }


def relay(service: Any, caller: str, raw_hex: str) -> dict[str, Any]:
    """Checks and sends a signed raw transaction; ``{"tx_hash", "block_number", "status"}`` once mined. The same
    bytes relayed again answer the same receipt (a retry sends nothing new).

    Raises:
        ApiError: 422 malformed or another chain's; 403 signed by someone else, or not allow-listed.
        ContractReverted: the eth_call of it reverts (409): nothing is sent.
    """
    from eth_account.typed_transactions import TypedTransaction
    from web3.exceptions import TransactionNotFound

    try:
        raw = HexBytes(raw_hex)
        fields = TypedTransaction.from_bytes(raw).as_dict()
        signer = Account.recover_transaction(raw)
    except Exception:  # noqa: BLE001 -- rlp, signature and type errors all mean "not a signed transaction"
        raise ApiError(422, "Malformed", "not a signed typed (EIP-2930/1559) transaction") from None
    if int(fields.get("type", 0)) not in (1, 2):  # a blob transaction (4844) needs a sidecar the relay never has
        raise ApiError(422, "Malformed", f"a type {fields.get('type')} transaction: the relay takes EIP-2930/1559")
    if int(fields.get("chainId", -1)) != service.chain_id:
        raise ApiError(
            422,
            "WrongChain",
            f"the transaction is for chain {fields.get('chainId')}, this service is chain {service.chain_id}",
        )
    if signer != caller:
        raise forbidden(f"the transaction is signed by {signer}, not by the signed-in {caller}")
    to = fields.get("to")
    data = bytes(HexBytes(fields.get("data", b"")))
    target = allow_list(service).get((service.w3.to_checksum_address(to) if to else "", data[:4]))
    if target is None:
        raise forbidden("that target and function are not relayed by this service")
    if target.function == "approve":
        if len(data) < 4 + 32:
            raise ApiError(422, "Malformed", "the approve call's arguments are truncated")
        spender = "0x" + data[4 + 12 : 4 + 32].hex()
        if service.w3.to_checksum_address(spender) != service.deployment.vault.address:
            raise forbidden("the reward token's approve is relayed only towards the RewardVault")
    tx = Transactor(service.w3)
    tx_hash = HexBytes(keccak(bytes(raw)))
    try:
        receipt = service.w3.eth.get_transaction_receipt(tx_hash)  # relayed before: answer the same
    except TransactionNotFound:
        _require_sendable(service, signer, fields)
        try:
            service.w3.eth.call(
                {
                    "from": signer,
                    "to": target.bound.address,
                    "data": data,
                    "value": int(fields.get("value", 0)),
                    "gas": int(fields["gas"]),
                }
            )
        except (ContractCustomError, ContractLogicError) as exc:
            raise decode_revert(getattr(exc, "data", None)) or ApiError(409, "Reverted", str(exc)) from None
        except (Web3Exception, ValueError) as exc:  # the node answered, refusing the call (gas out of its bounds)
            raise conflict(f"the node refuses the transaction: {exc}", code="NodeRefused") from None
        try:
            sent = tx.send_raw(raw)
        except ChainError as exc:  # the node answered, refusing the signer's transaction: no outage (503)
            raise conflict(str(exc), code="NodeRefused") from None
        receipt = tx.wait(sent)
    if receipt is None:
        raise ChainError(f"no receipt for {tx_hash.to_0x_hex()}")
    return {
        "tx_hash": tx_hash.to_0x_hex(),
        "block_number": int(receipt["blockNumber"]),
        "status": int(receipt["status"]),
        "contract": target.contract,
        "function": target.function,
    }


def _require_sendable(service: Any, signer: str, fields: dict[str, Any]) -> None:
    """What the node would refuse or leave pending forever, refused here (409) instead: another nonce than the
    signer's next, a fee below the base fee, more than the signer's balance can pay."""
    w3 = service.w3
    nonce = int(w3.eth.get_transaction_count(signer, "pending"))
    if int(fields["nonce"]) != nonce:
        raise conflict(
            f"the transaction's nonce is {fields['nonce']}, {signer}'s next nonce is {nonce}", code="NonceMismatch"
        )
    fee = int(fields.get("maxFeePerGas", fields.get("gasPrice", 0)))
    base = int(w3.eth.get_block("latest")["baseFeePerGas"])
    if fee < base:
        raise conflict(f"the transaction's fee per gas {fee} is below the base fee {base}", code="FeeTooLow")
    cost, balance = int(fields["gas"]) * fee + int(fields.get("value", 0)), int(w3.eth.get_balance(signer))
    if balance < cost:
        raise conflict(f"{signer} holds {balance} wei, the transaction may cost {cost}", code="InsufficientFunds")
