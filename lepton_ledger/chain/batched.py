"""Fewer round trips to the node: reads in one JSON-RPC batch request, and a transaction's nonce, gas and fees
in one more; and little Python around each.

A round's cost on a local node is mostly round trips, not work: web3 alone spends six requests on one
transaction (nonce, gas estimate, priority fee, latest block, send, receipt). With :func:`prepare_transaction`
it takes three: the four reads in one batch, the send, the receipt. (The receipt stays a request of its own,
asked after the broadcast is recorded: a node that dies after mining may lose the block, and the outbox must
then still hold the transaction as sent, not confirmed.) :func:`prepare_with_reads` adds those four reads to a
batch of others: a partner reads its ``submitUpdate``'s nonce, gas and fees with the round's reads, before it
trains, so its round is three requests (partner.py).

The batches are plain JSON-RPC requests to the provider: web3's batch of four contract reads spent ~10 ms of
Python (looking each function up again among the contract's, validating and formatting every parameter through
its middlewares) against ~1 ms for the round trip. Calldata is the contract function's selector and its
arguments encoded by web3's codec (:func:`calldata`), answers are decoded by web3's own decoder, so the
results are web3's. Any error answer is asked again through web3 (one more request, on a path that ends in an
error anyway), so that every refusal raises exactly what web3 raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any, cast

from eth_abi.exceptions import DecodingError, EncodingError
from eth_abi.grammar import ABIType, BasicType, TupleType
from eth_abi.grammar import parse as parse_abi_type
from eth_typing import ChecksumAddress
from eth_utils import get_abi_input_types, get_abi_output_types
from hexbytes import HexBytes
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.contract.utils import format_contract_call_return_data_curried
from web3.exceptions import ContractCustomError, ContractLogicError
from web3.types import BlockIdentifier, RPCEndpoint

from ..errors import ChainError
from ._values import checksummed
from .transactions import GAS_MARGIN, decode_revert, error_text, node_request

__all__ = ["batch_results", "calldata", "dry_run", "prepare_transaction", "prepare_with_reads", "read_many"]


def calldata(call: ContractFunction) -> str:
    """The calldata of `call` (a bound contract function), as web3's ``_encode_transaction_data`` gives it: its
    selector and its arguments in the function's ABI types. Arguments web3 would first convert (an ENS name, a
    hex string for bytes) go through web3's encoding."""
    if call.arguments is not None and call.abi.get("type") == "function":
        try:
            return str(call.selector) + call.w3.codec.encode(get_abi_input_types(call.abi), call.arguments).hex()
        except (EncodingError, TypeError, ValueError):
            pass
    return str(call._encode_transaction_data())


def read_many(w3: Web3, requests: Sequence[Any], *, block: BlockIdentifier | None = None) -> list[Any]:
    """The results of `requests` (bound contract calls such as ``contract.functions.f(x)``, or web3 methods
    called inside ``w3.batch_requests()``) from one JSON-RPC batch request, decoded as web3 decodes each.
    `block`: where the contract calls read (default web3's default block).

    Raises:
        ContractCustomError, ContractLogicError: a read reverted (as web3 raises them).
    """
    if not requests:
        return []
    if all(isinstance(r, ContractFunction) for r in requests):
        answers = batch_results(w3, [_eth_call(w3, r, block) for r in requests])
        if answers is not None:
            return [_decoded(w3, r, a) for r, a in zip(requests, answers)]
        if block is not None:  # an error to raise as web3 raises it, at the same block
            return [r.call(block_identifier=block) for r in requests]
    with w3.batch_requests() as batch:  # other requests, or an error to raise as web3 raises it
        for request in requests:
            batch.add(request)
        return list(batch.execute())


def dry_run(w3: Web3, call: ContractFunction, sender: str) -> None:
    """Runs `call` as `sender` would send it (an ``eth_call`` at the latest block), for its refusal only.

    Raises:
        ContractReverted: the contract would refuse, with its custom error decoded.
        ChainError: the call failed otherwise.
    """
    request = {"from": sender, "to": call.address, "data": calldata(call)}
    answer = node_request(w3, "eth_call", [request, "latest"])
    if "error" not in answer:
        return
    error = answer["error"]
    data = error.get("data") if isinstance(error, dict) else None
    raise decode_revert(data if isinstance(data, (str, bytes)) else None) or ChainError(
        f"{call.fn_name} dry run: {error_text(answer)}"
    )


def prepare_transaction(w3: Web3, tx: dict[str, Any], sender: str) -> dict[str, Any]:
    """`tx` (``to``, ``data``, optional ``value`` and ``gas``) with ``nonce`` (the sender's pending count),
    ``gas`` (the estimate times ``GAS_MARGIN``, within the block gas limit) and EIP-1559 fees (web3's default:
    the node's priority fee plus twice the base fee; none when `w3` has a gas price strategy, whose legacy gas
    price web3 fills when signing), from one batch request.

    Raises:
        ContractReverted: the gas estimate shows the contract would refuse, with its custom error decoded.
        ChainError: the estimate failed otherwise.
    """
    return prepare_with_reads(w3, tx, sender, [])[0]


def prepare_with_reads(
    w3: Web3, tx: dict[str, Any], sender: str, reads: Sequence[Any]
) -> tuple[dict[str, Any], list[Any]]:
    """:func:`prepare_transaction`'s answer and the results of `reads` (bound contract calls, as
    :func:`read_many`'s), from the same batch request.

    Raises:
        ContractReverted, ChainError: as :func:`prepare_transaction` (the reads' results are then lost).
    """
    call = {**tx, "from": sender}
    # A web3 with a gas price strategy (brownie sets one) sends legacy transactions: web3 fills their gas price.
    dynamic_fees = w3.eth.generate_gas_price(call) is None  # type: ignore[arg-type]  # None: no strategy
    answers = None
    if all(isinstance(r, ContractFunction) for r in reads):
        requests = [_eth_call(w3, r) for r in reads]
        requests += [("eth_getTransactionCount", [sender, "pending"]), ("eth_getBlockByNumber", ["latest", False])]
        if "gas" not in tx:
            requests.append(("eth_estimateGas", [_rpc_transaction(call)]))
        if dynamic_fees:
            requests.append(("eth_maxPriorityFeePerGas", []))
        raw = batch_results(w3, requests)
        if raw is not None:
            results = [_decoded(w3, r, a) for r, a in zip(reads, raw)]
            nonce, block, *numbers = raw[len(reads) :]
            block = {k: int(block[k], 16) for k in ("baseFeePerGas", "gasLimit") if block.get(k) is not None}
            answers = [*results, int(nonce, 16), block, *(int(n, 16) for n in numbers)]
    if answers is None:  # other reads, or an error to raise as web3 raises it
        try:
            with w3.batch_requests() as batch:
                for read in reads:
                    batch.add(read)
                batch.add(w3.eth.get_transaction_count(cast(ChecksumAddress, sender), "pending"))
                batch.add(w3.eth.get_block("latest"))
                if "gas" not in tx:
                    batch.add(w3.eth.estimate_gas(call))  # type: ignore[arg-type]
                if dynamic_fees:
                    batch.add(w3.eth.max_priority_fee)
                answers = cast(list[Any], batch.execute())  # decoded, in order
        except (ContractCustomError, ContractLogicError) as exc:
            raise decode_revert(getattr(exc, "data", None)) or ChainError(str(exc)) from None
    results, (nonce, block, *answers) = answers[: len(reads)], answers[len(reads) :]
    prepared = {**tx, "nonce": int(nonce)}
    if dynamic_fees:
        priority = int(answers.pop())
        prepared.update(maxPriorityFeePerGas=priority, maxFeePerGas=priority + 2 * int(block["baseFeePerGas"]))
    estimate = answers
    if estimate:
        prepared["gas"] = max(min(int(estimate[0] * GAS_MARGIN), int(block["gasLimit"])), int(estimate[0]))
    return prepared, results


def batch_results(w3: Web3, requests: list[tuple[str, list[Any]]]) -> list[Any] | None:
    """The results of `requests` (``(method, params)``) from one batch request to the provider; None when any
    answer is an error or has no result (the caller asks again through web3, which raises it as web3 does) or
    the provider sends no batches (web3's path then says what it can do)."""
    make_batch_request = getattr(w3.provider, "make_batch_request", None)
    try:
        answers = make_batch_request([(RPCEndpoint(m), p) for m, p in requests]) if make_batch_request else None
    except NotImplementedError:
        return None
    if not isinstance(answers, list) or len(answers) != len(requests):
        return None
    if any(not isinstance(a, dict) or "error" in a or "result" not in a for a in answers):
        return None
    return [a.get("result") for a in answers]


def _eth_call(w3: Web3, call: ContractFunction, block: BlockIdentifier | None = None) -> tuple[str, list[Any]]:
    """The ``eth_call`` request of `call` at `block` (default web3's default block), as ``call.call()`` would
    send it."""
    params: dict[str, Any] = {"to": call.address, "data": calldata(call)}
    if w3.eth.default_account:  # web3's ``empty`` sentinel is falsy
        params["from"] = w3.eth.default_account
    at = w3.eth.default_block if block is None else block
    if isinstance(at, bytes):  # a block hash
        return "eth_call", [params, "0x" + at.hex()]
    return "eth_call", [params, hex(at) if isinstance(at, int) else at]


def _decoded(w3: Web3, call: ContractFunction, answer: Any) -> Any:
    """`answer` (the hex of an ``eth_call``'s return data) decoded as web3 decodes `call`'s result: a single
    output as itself, several as a list; structs as tuples, arrays as lists, addresses checksummed. Decoded here
    with web3's codec (web3's own path, which maps every value through its normalizers, spent ~0.5 ms on a
    struct of 15 fields against ~0.1 ms); a call web3 would format otherwise (named tuples, extra normalizers) or
    an answer that does not decode goes through web3's path, which raises as web3 raises."""
    outputs = get_abi_output_types(call.abi) if call.abi["type"] == "function" else []
    data = bytes(HexBytes(answer))  # as web3's eth_call result formatter reads it, whatever the node answered
    if not call.decode_tuples and not call._return_data_normalizers:
        try:
            # Only small answers are kept: a node's answer is not ours to size, and the views are a few words.
            decode = _decode if len(data) <= CACHED_ANSWER_BYTES else _decode.__wrapped__
            values = decode(w3.codec, tuple(outputs), data)
        except DecodingError:
            pass
        else:
            returned = [_as_web3_returns(_abi_type(t), v) for t, v in zip(outputs, values)]
            return returned[0] if len(returned) == 1 else returned
    return format_contract_call_return_data_curried(
        w3,
        call.decode_tuples,
        call.abi,
        call.abi_element_identifier,
        call._return_data_normalizers,
        outputs,
        data,
    )


CACHED_ANSWER_BYTES = 4096


@lru_cache(maxsize=256)
def _decode(codec: Any, outputs: tuple[str, ...], data: bytes) -> tuple[Any, ...]:
    """`codec`'s decoding of `data` in `outputs`, kept: a round's parties read the same views (the recipients'
    registry entries, the round) and get the same bytes, 40-100 µs a struct to decode. Immutable (tuples, ints,
    bytes, strings); :func:`_as_web3_returns` builds the lists web3 gives from it afresh."""
    return tuple(codec.decode(outputs, data))


@lru_cache(maxsize=512)
def _abi_type(type_str: str) -> ABIType:
    return cast(ABIType, parse_abi_type(type_str))


def _as_web3_returns(abi_type: ABIType, value: Any) -> Any:
    """A decoded value as web3 returns it: arrays as lists, tuples as tuples, addresses checksummed."""
    if abi_type.is_array:
        item = abi_type.item_type
        return [_as_web3_returns(item, v) for v in value]
    if isinstance(abi_type, TupleType):
        return tuple(_as_web3_returns(c, v) for c, v in zip(abi_type.components, value))
    if isinstance(abi_type, BasicType) and abi_type.base == "address":
        return checksummed(value)
    return value


def _rpc_transaction(tx: dict[str, Any]) -> dict[str, Any]:
    """`tx` with its integers as JSON-RPC quantities (``0x``-hex), as web3's request formatters send them."""
    return {k: hex(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in tx.items()}
