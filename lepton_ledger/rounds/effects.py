"""The side effects of round steps, through the durable outbox: what partner.py and coordinator.py call instead
of ``store.put`` and ``tx.transact``, so that a process killed at any point and started again with the same
calls finishes its work with nothing lost and nothing done twice.

Operation keys (:meth:`RoundEffects.key`): ``"<step>:<chain tag>:<ledger address>:<parts...>"``, the chain tag
being the chain id and a prefix of block 1's hash (:func:`chain_tag`), the parts agreement, round and
party where the step has them, e.g. ``"submit:31337-8a1f0c2b9e4d:0xLedger:1:2:0xPartner"``. A restarted process
recomputes the key from the same arguments and finds its earlier work; a fresh local chain, though it has the
same chain id and contract addresses, never finds another chain's. Steps: ``model``, ``open``
(coordinator, step 1), ``envelope``, ``submit``, ``signature`` (partner, steps 3-4), ``batch-document``, ``batch``,
``aggregate``, ``report``, ``finalize`` (coordinator, step 5), ``claim`` (partner, step 6).

Kinds and JSON payloads:

- ``"put"``: ``{"cid": the CID the bytes give (``protocol.addressing``), ...caller's fields}``, the bytes
  recorded with the operation (``Outbox.data``, :func:`put_data`). The bytes live in the outbox, so an artifact
  that cannot be made again (a sealed envelope: fresh keys) is durable before anything publishes or commits it.
  Result ``{"cid", "digest"}`` (0x-hex CID digest, as the chain holds it).
- ``"transaction"``: ``outbox.transaction_payload`` plus the caller's fields; result a receipt summary.
- ``"record"``: a fact with nothing to execute (a signature given away), enqueued then confirmed by the caller.

Checkpoints, for tests that kill the process there: ``"<step>:enqueued"`` once the operation is durable;
``"<step>:signed"``, ``":broadcast"``, ``":recorded"`` inside a transaction (outbox.TransactionHandler);
``"<step>:confirmed"`` once it is done. The round classes add theirs: the partner ``"train:done"`` (trained,
nothing durable yet), ``"signature:enqueued"`` / ``":confirmed"`` (batched: the signature is being / has been
given away), ``"accountant:recorded"``; the coordinator ``"outcome:enqueued"`` (aggregate, report and
``finalizeRound`` recorded together).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from web3 import Web3
from web3.contract.contract import ContractFunction

from ..chain.transactions import Transactor
from ..errors import ChainError
from ..protocol.addressing import CID_VERSION, artifact_cid
from ..settings import data_dir
from ..storage.cid import parse_cid
from ..storage.store import Store
from .outbox import (
    OPEN,
    Operation,
    Outbox,
    OutboxError,
    PermanentFailure,
    Runner,
    TransactionHandler,
    reverted_from_result,
    transaction_payload,
)

__all__ = ["Checkpoint", "RoundEffects", "chain_tag", "default_outbox", "local_cid", "put_data", "put_result"]

Checkpoint = Callable[[str, "Operation | None"], None]


def chain_tag(w3: Web3) -> str:
    """``"<chain id>-<hash prefix of block 1>"``: two local chains share a chain id and, deployed alike, the same
    contract addresses, but not their first block (its timestamp differs), so one chain's outbox is never resumed
    on another. Block 1, not the genesis block: anvil regenerates its genesis block when restarted from a state
    file, while the blocks after it are loaded as they were."""
    first = w3.eth.get_block(1 if w3.eth.block_number >= 1 else 0)
    return f"{w3.eth.chain_id}-{bytes(first['hash']).hex()[:12]}"


def default_outbox(role: str, w3: Web3, party: str) -> Outbox:
    """The outbox of `role` (``"partner"``, ``"coordinator"``) for `party` on this chain, under the data
    directory: ``<data dir>/outbox/<role>-<chain tag>-<party>.sqlite``."""
    return Outbox(data_dir() / "outbox" / f"{role}-{chain_tag(w3)}-{party}.sqlite")


def local_cid(data: bytes) -> str:
    """The CID a store's put of `data` as an artifact gives (``protocol.addressing``), computed without a store."""
    return artifact_cid(data)


class RoundEffects:
    """Puts and transactions of one party, each recorded in `outbox` before it happens.

    Args:
        outbox: where operations are recorded.
        tx: the ``Transactor`` holding the party's key; its web3 names the chain.
        store: the block store artifacts are put to.
        checkpoint: called with each checkpoint's name and operation (see the module docstring).
    """

    def __init__(self, outbox: Outbox, *, tx: Transactor, store: Store, checkpoint: Checkpoint | None = None) -> None:
        self.outbox, self.tx, self.store = outbox, tx, store
        self.chain = chain_tag(tx.w3)
        self.checkpoint: Checkpoint = checkpoint or (lambda point, op: None)
        self.transactions = TransactionHandler(
            tx, checkpoint=lambda point, op: self.checkpoint(f"{_step(op.key)}:{point}", op)
        )
        self.runner = Runner(outbox, {"put": self._put, "transaction": self.transactions})

    def key(self, step: str, ledger: str, *parts: object) -> str:
        """The idempotency key of `step` on `ledger` for `parts` (agreement, round, party...)."""
        return ":".join([step, self.chain, ledger, *(str(p) for p in parts)])

    # ------------------------------------------------------------------ building operations

    @staticmethod
    def put_operation(key: str, data: bytes, **fields: Any) -> tuple[str, str, dict[str, Any], bytes]:
        """The ``(key, kind, payload, data)`` of putting `data`, for :meth:`Outbox.enqueue_many`."""
        return key, "put", {**fields, "cid": local_cid(data)}, data

    @staticmethod
    def transaction_operation(
        key: str, call: ContractFunction, sender: str, **fields: Any
    ) -> tuple[str, str, dict[str, Any]]:
        """The ``(key, kind, payload)`` of sending `call` from `sender`, for :meth:`Outbox.enqueue_many`."""
        return key, "transaction", {**fields, **transaction_payload(call, sender)}

    # ------------------------------------------------------------------ doing them

    def put(self, key: str, data: bytes, **fields: Any) -> Operation:
        """Records, then puts `data`; returns the confirmed operation (:func:`put_result` reads it). An earlier
        operation with this key wins: its bytes are put, not these.

        Raises:
            OutboxError: another live process holds the operation.
            PermanentFailure: the store returned another CID than the bytes give.
        """
        op = self.outbox.enqueue(*self.put_operation(key, data, **fields))
        self.checkpoint(f"{_step(key)}:enqueued", op)
        return self.finish(key, known=op)

    def transact(
        self, key: str, call: ContractFunction, sender: str, *, read_ahead: dict[str, Any] | None = None, **fields: Any
    ) -> Operation:
        """Records, then sends `call` from `sender` and waits for its receipt; returns the confirmed operation.
        `read_ahead`: its nonce, gas and fees, read earlier with other reads (``TransactionHandler.read_ahead``).

        An operation with this key that is open is resumed (its recorded call, not this one); one that failed had
        no effect and is retried with this call.

        Raises:
            ContractReverted: the contract refused (the operation is marked failed).
            ChainError: the node is unreachable or gives no receipt (the operation stays open, for a later call).
            OutboxError: another live process holds the operation.
        """
        _, kind, payload = self.transaction_operation(key, call, sender, **fields)
        op = self.outbox.enqueue(key, kind, payload)
        if op.status == "failed":
            op = self.outbox.retry(key, payload)
        self.checkpoint(f"{_step(key)}:enqueued", op)
        if read_ahead is not None and op.status == "pending" and op.tx_raw is None:  # not one signed before
            self.transactions.read_ahead[key] = read_ahead
        return self.finish(key, known=op)

    def finish(self, key: str, *, retry: bool = False, known: Operation | None = None) -> Operation:
        """Runs open operations, oldest first, until the one with `key` is done; returns it confirmed. With
        `retry`, an operation that had failed is first made pending again with its recorded payload. `known`:
        the operation as the caller just read or recorded it, not read again.

        Raises:
            ContractReverted, ChainError, PermanentFailure: as :meth:`transact` and :meth:`put`.
            OutboxError: unknown key, or another live process holds the operation.
        """
        op = known if known is not None and known.key == key else self.outbox.get(key)
        if retry and op.status == "failed":
            op = self.outbox.retry(key)
        while op.status in OPEN:
            ran = self.runner.run_once()
            if ran is None:  # nothing this process may run: `key` is another process's, or it has ended since
                op = self.outbox.get(key)
                if op.status in OPEN:
                    raise OutboxError(f"operation {key!r} is held by another live process")
                break
            op = ran if ran.key == key else self.outbox.get(key)
        if op.status == "failed":
            raise reverted_from_result(op.result) or _failure(op)
        self.checkpoint(f"{_step(key)}:confirmed", op)
        return op

    def _put(self, op: Operation, outbox: Outbox) -> dict[str, str]:
        cid = self.store.put(put_data(outbox, op), cid_version=CID_VERSION)
        if cid != op.payload["cid"]:
            raise PermanentFailure(f"the store put {op.key!r} as {cid}, the bytes give {op.payload['cid']}")
        return {"cid": cid, "digest": "0x" + parse_cid(cid).digest.hex()}


def put_result(op: Operation) -> tuple[str, bytes]:
    """``(cid, digest)`` of a confirmed put, as ``report.publish`` returns them."""
    return op.result["cid"], bytes.fromhex(op.result["digest"][2:])


def put_data(outbox: Outbox, op: Operation) -> bytes:
    """The bytes put operation `op` of `outbox` holds (an outbox written before they had a table of their own
    holds them base64-encoded in the payload's ``"data"``).

    Raises:
        OutboxError: the operation holds no bytes.
    """
    data = outbox.data(op.key)
    if data is not None:
        return data
    if not isinstance(op.payload.get("data"), str):
        raise OutboxError(f"put operation {op.key!r} holds no bytes")
    return base64.b64decode(op.payload["data"])


def _step(key: str) -> str:
    return key.split(":", 1)[0]


def _failure(op: Operation) -> Exception:
    if op.kind == "transaction":
        return ChainError(f"operation {op.key!r} failed: {op.error}")
    return PermanentFailure(f"operation {op.key!r} failed: {op.error}", op.result)
