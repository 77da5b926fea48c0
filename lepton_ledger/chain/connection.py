"""Which chain a command talks to: any EVM node by RPC URL, or the data directory's local node (chain/node.py)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Self

from web3 import Web3

from .. import settings
from ..errors import ChainError
from . import node
from .transport import node_web3


@contextmanager
def connect(rpc_url: str | None = None) -> Iterator[Web3]:
    """Yields a Web3 connected to `rpc_url` (or ``$LEPTON_RPC_URL``); with neither, to the data directory's local
    node, started (and said so on stderr) when none runs. The node outlives the command and is shared by every
    command at once, so none of them loses another's transactions.

    Raises:
        ChainError: the RPC URL does not answer as an Ethereum node.
        ToolchainError: the local node cannot start.
    """
    url = rpc_url or settings.rpc_url()
    if url is None:
        url = node.ensure(announce=lambda line: print(line, file=sys.stderr)).url
    # cache_allowed_requests: web3 asks eth_chainId before every call otherwise (half of all requests, measured)
    w3 = node_web3(url)
    try:
        w3.eth.chain_id
    except Exception as exc:  # noqa: BLE001 -- any transport or protocol failure means the same to the caller
        raise ChainError(f"no Ethereum node answers at {url}: {exc}") from None
    yield w3


class RequestCounter:
    """Counts the HTTP requests `w3`'s provider sends to the node while it is open: the round trips a piece of
    work costs (a JSON-RPC batch is one request; what web3 answers from its cache is none).

    A receipt asked for before the node has mined the transaction comes back empty and is asked again; how many
    times depends on when the node mines, not on the work, so those empty answers are counted apart, in
    :attr:`pending_polls`.

    Use as a context manager, or call :meth:`take` between pieces of work and :meth:`close` at the end.
    """

    def __init__(self, w3: Web3) -> None:
        self.requests = 0
        self.pending_polls = 0
        self._session = w3.provider._request_session_manager  # type: ignore[attr-defined]  # where every POST goes
        post = self._session.make_post_request

        def counted(endpoint_uri: Any, data: Any, **kwargs: Any) -> Any:
            answer = post(endpoint_uri, data, **kwargs)
            if _receipt_still_pending(data, answer):
                self.pending_polls += 1
            else:
                self.requests += 1
            return answer

        self._session.make_post_request = counted

    def take(self) -> int:
        """The requests counted so far, and a fresh start."""
        taken, self.requests = self.requests, 0
        return taken

    def close(self) -> None:
        """Stops counting."""
        self._session.__dict__.pop("make_post_request", None)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _receipt_still_pending(request: Any, answer: Any) -> bool:
    """Whether `request` asked for one transaction receipt and `answer` says it is not mined yet."""
    if not isinstance(request, bytes) or b'"eth_getTransactionReceipt"' not in request:
        return False
    try:
        return json.loads(answer).get("result", False) is None
    except (ValueError, AttributeError):  # a batch (a list) or a body that is not JSON: a request like any other
        return False
