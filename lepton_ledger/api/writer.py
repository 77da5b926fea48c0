"""The service's one writer: the one thread that sends the coordinator's transactions, every one of them through
the coordinator's durable outbox (rounds/outbox.py, the file ``coordinator close`` and ``anchor`` use), so that
two requests never race on the coordinator's nonce and a process killed between broadcast and receipt neither
loses nor doubles a transaction.

A route hands its whole step (checks, then transactions) to :meth:`Writer.call` and waits for its outcome; jobs
hand it their anchor and the publication of a close (whose outcome is computed off the writer). A transaction a
step sends with ``Transactor.transact`` is recorded under a key made of the step's scope (the caller and its
Idempotency-Key) and of the call (target, selector, how many such calls the step made before it): the retry of a request that a restart interrupted, run again with the same
scope, finds its transactions there: one confirmed is answered from its receipt, one broadcast is awaited (or its
same signed bytes broadcast again), none is sent twice. At start, before any request, the writer finishes what
the outbox holds open (a dead process's puts and transactions).

A request waits at most ``wait`` seconds for its step to start: behind a step that does not end (a transaction the
node takes and never mines), it is answered 503 ``WriterBusy`` and its step is dropped unrun, instead of holding one of the server's worker threads (all of them, in the end) until that step ends."""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, wait
from typing import Any, TypeVar

from web3.contract.contract import ContractFunction
from web3.types import TxReceipt

from ..chain.transactions import Transactor
from ..errors import ChainError, ContractReverted, LeptonError
from .errors import ApiError

T = TypeVar("T")
log = logging.getLogger(__name__)


def request_scope(caller: str, key: str | None, route: str, body: bytes) -> str | None:
    """The scope of a request's step: its caller, Idempotency-Key and request (a key reused for another request, once
    the first was refused, names another step); None without a key."""
    return None if key is None else f"{caller}/{key}/{route}/{hashlib.sha256(body).hexdigest()}"


class Writer:
    """Runs the coordinator's steps one at a time on its thread (:meth:`call`).

    Args:
        w3: the service's chain.
        account: the coordinator's key (a LocalAccount).
        store: the service's store (the outbox's puts).
        ledger: the RoundLedger's address (it names the deployment in the outbox's keys).
        wait: the seconds a request's step waits to start (module docstring).
    """

    def __init__(self, w3: Any, account: Any, store: Any, ledger: str, *, wait: float = 10.0) -> None:
        self.w3, self.store, self.ledger, self.wait = w3, store, ledger, wait
        self.tx = OutboxTransactor(w3, account, self)
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], str | None, Future[Any]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="lepton-writer", daemon=True)
        self._effects: Any = None
        self._scope = ""
        self._calls: Counter[tuple[str, str]] = Counter()
        self._stopped = False
        self._stopping = threading.Lock()  # no step is queued behind the end of the queue

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._stopping:
            self._stopped = True
            self._queue.put(None)
        self._thread.join(timeout=5)

    def call(self, step: Callable[[], T], *, scope: str | None = None, bounded: bool = True) -> T:
        """`step()`'s outcome (its value or its exception), run on the writer's thread after the steps queued
        before it. `scope` names the step across restarts (its transactions' keys); None: a fresh one. `bounded`
        (a request's step): dropped unrun when it has not started within ``wait`` seconds.

        Raises:
            ApiError: 503 ``WriterBusy`` when the step was dropped, or the service is stopping.
        """
        if threading.current_thread() is self._thread:  # a step inside a step: already the writer
            return step()
        future: Future[T] = Future()
        with self._stopping:
            if self._stopped:
                raise _busy("the service is stopping")
            self._queue.put((step, scope, future))
        if not wait([future], timeout=self.wait if bounded else None).done and future.cancel():
            raise _busy(
                f"an earlier step (a transaction the chain has not mined yet) has held the coordinator's "
                f"writer for over {self.wait:g} s"
            )
        return future.result()  # started meanwhile: its outcome, however long it takes

    def effects(self) -> Any:
        """The coordinator's ``RoundEffects`` on its outbox (built on the writer's thread, on first use)."""
        if self._effects is None:
            from ..rounds.effects import RoundEffects, default_outbox

            outbox = default_outbox("coordinator", self.w3, self.tx.address)
            self._effects = RoundEffects(outbox, tx=self.tx, store=self.store)
        return self._effects

    def key(self, call: ContractFunction) -> str:
        """The outbox key of `call` in the running step (module docstring)."""
        selector = call._encode_transaction_data()[:10]
        n = self._calls[(call.address, selector)]
        self._calls[(call.address, selector)] += 1
        return self.effects().key("request", self.ledger, self._scope, call.address, selector, n)

    def _run(self) -> None:
        try:
            self.effects().runner.run()
        except Exception as exc:  # noqa: BLE001 -- the chain or store gone: the steps that need them finish them
            log.warning("the coordinator's outbox holds operations not finished at start: %s", exc)
        while (item := self._queue.get()) is not None:
            step, scope, future = item
            if not future.set_running_or_notify_cancel():
                continue
            name = scope if scope is not None else uuid.uuid4().hex
            self._scope = hashlib.sha256(name.encode()).hexdigest()[:24]  # keys of bounded length, no separators
            self._calls.clear()
            earlier: list[Any] = []
            try:  # what the outbox holds of this step: a step a restart interrupted, run again
                prefix = self.effects().key("request", self.ledger, self._scope)
                earlier = [op for op in self.effects().outbox.operations(prefix=prefix) if op.status != "failed"]
                future.set_result(step())
            except BaseException as exc:  # noqa: BLE001 -- the caller's to handle, in its thread
                future.set_exception(_interrupted(earlier, exc) if earlier and _refusal(exc) else exc)


def _busy(why: str) -> ApiError:
    return ApiError(
        503,
        "WriterBusy",
        f"{why}; nothing of this request was sent: retry it",
        headers={"Retry-After": "5"},
    )


def _refusal(exc: BaseException) -> bool:
    """Whether `exc` is a step's refusal (its checks, the contract), not a chain that does not answer."""
    return isinstance(exc, ApiError) or (
        isinstance(exc, LeptonError) and (isinstance(exc, ContractReverted) or not isinstance(exc, ChainError))
    )


def _interrupted(earlier: list[Any], refusal: BaseException) -> ApiError:
    """409 ``Interrupted``: a step run again that its checks now refuse, likely for what its earlier run did (the
    transactions the outbox holds for it, named)."""
    sent = [
        {
            "tx_hash": op.tx_hash,
            "status": op.status,
            **({"block_number": op.result["block_number"]} if op.status == "confirmed" else {}),
        }
        for op in earlier
    ]
    done = ", ".join(f"{t['tx_hash']} ({t['status']})" for t in sent)
    return ApiError(
        409,
        "Interrupted",
        f"an earlier run of this request (a restart interrupted it, or it failed part-way) sent transactions "
        f"({done}); run again, it is refused: {refusal}",
        detail={"transactions": sent},
    )


class OutboxTransactor(Transactor):
    """The coordinator's Transactor in the service: ``transact`` records the call in the coordinator's outbox
    under the writer's key and sends it from there (signing, broadcasting and receipts are the Transactor's)."""

    def __init__(self, w3: Any, account: Any, writer: Writer) -> None:
        super().__init__(w3, [account])
        self.address, self.writer = account.address, writer

    def transact(self, call: ContractFunction, sender: str, *, gas: int | None = None) -> TxReceipt:
        """As ``Transactor.transact``, through the outbox: a call of this step recorded before (by a process a
        restart interrupted) is resumed or answered, not sent again."""
        fields = {} if gas is None else {"gas": gas}
        op = self.writer.effects().transact(self.writer.key(call), call, sender, **fields)
        return self.w3.eth.get_transaction_receipt(op.result["tx_hash"])
