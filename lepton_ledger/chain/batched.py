"""Fewer round trips to the node: reads in one JSON-RPC batch request, and a transaction's nonce, gas and fees
in one more.

A round's cost on a local node is mostly round trips, not work: web3 alone spends six requests on one
transaction (nonce, gas estimate, priority fee, latest block, send, receipt). With :func:`prepare_transaction`
it takes three: the four reads in one batch, the send, the receipt. (The receipt stays a request of its own,
asked after the broadcast is recorded: a node that dies after mining may lose the block, and the outbox must
then still hold the transaction as sent, not confirmed.) :func:`prepare_with_reads` adds those four reads to a
batch of others: a partner reads its ``submitUpdate``'s nonce, gas and fees with the round's reads, before it
trains, so its round is three requests (partner.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from eth_typing import ChecksumAddress
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError

from ..errors import ChainError
from .transactions import GAS_MARGIN, decode_revert

__all__ = ["prepare_transaction", "prepare_with_reads", "read_many"]


def read_many(w3: Web3, requests: Sequence[Any]) -> list[Any]:
    """The results of `requests` (bound contract calls such as ``contract.functions.f(x)``, or web3 methods
    called inside ``w3.batch_requests()``) from one JSON-RPC batch request, decoded as web3 decodes each."""
    if not requests:
        return []
    with w3.batch_requests() as batch:
        for request in requests:
            batch.add(request)
        return list(batch.execute())


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
