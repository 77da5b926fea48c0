"""Bound contract calls on the rounds' hot paths, without web3 resolving the function again on every call.

``contract.functions.f(*args)`` makes web3 look ``f`` up among the contract's functions by name and argument
count and check that every argument encodes in each candidate's types, then copy the function and hash its
selector again: ~55-90 µs a call, and a round of ten partners builds some seventy (their reads, their
``submitUpdate``, the close's reads and ``finalizeRound``). ``calls(contract).f(*args)`` lets web3 do all of
that the first time for each function and argument count, then reuses what it found: a copy of that bound
function with the new arguments (~5 µs).

Only for the project's own calls of functions that are not overloaded, with arguments of the ABI's types: an
argument that does not encode then fails when the call is encoded, as web3 fails, not when it is built. A call
built from what a user sent (the service's relay) goes through web3's ``contract.functions`` and its checks.
"""

from __future__ import annotations

import copy
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

from web3.contract.contract import Contract, ContractFunction

__all__ = ["calls"]

_lock = threading.Lock()
_by_contract: weakref.WeakKeyDictionary[Contract, ContractCalls] = weakref.WeakKeyDictionary()


def _reset_lock_in_child() -> None:
    # A child forked while another thread held the lock (the audit forks its workers, the service runs audits
    # beside its other threads) would wait for it forever.
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_lock_in_child)


class ContractCalls:
    """``calls(contract).f(*args)``: `contract`'s function ``f`` bound to `args` (see the module docstring)."""

    def __init__(self, contract: Contract) -> None:
        self._functions = contract.functions  # not the contract: the weak map's value must not keep its key alive
        self._bound: dict[tuple[str, int], ContractFunction] = {}  # (name, argument count) -> web3's first
        names = [e.get("name") for e in contract.abi if e.get("type") == "function"]
        self._overloaded = {n for n in names if names.count(n) > 1}

    def __getattr__(self, name: str) -> Callable[..., ContractFunction]:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args: self._call(name, args)

    def _call(self, name: str, args: tuple[Any, ...]) -> ContractFunction:
        first = self._bound.get((name, len(args)))
        if first is None:
            bound: ContractFunction = getattr(self._functions, name)(*args)  # web3's lookup and checks
            if name not in self._overloaded:
                self._bound[(name, len(args))] = bound
            return bound
        clone = copy.copy(first)  # what web3's own copy does, less the lookup: same ABI, same selector
        clone.args, clone.kwargs, clone.arguments = args, {}, args
        return clone


def calls(contract: Contract) -> ContractCalls:
    """The :class:`ContractCalls` of `contract`, one per contract object while it lives."""
    with _lock:
        found = _by_contract.get(contract)
        if found is None:
            found = _by_contract[contract] = ContractCalls(contract)
        return found
