"""Which chain a command talks to: any EVM node by RPC URL, or the embedded anvil with its state on disk."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from web3 import HTTPProvider, Web3

from .. import settings
from ..errors import ChainError
from .anvil import Anvil


@contextmanager
def connect(rpc_url: str | None = None, *, state_file: Path | None = None) -> Iterator[Web3]:
    """Yields a Web3 connected to `rpc_url` (or ``$LEPTON_RPC_URL``); with neither, starts the embedded anvil
    on a free port, loading its chain from `state_file` (default ``settings.chain_state_file()``) and writing
    it back when the block ends, so the next command finds the same contracts and balances.

    Raises:
        ChainError: the RPC URL does not answer as an Ethereum node.
        ToolchainError: the embedded anvil cannot start.
    """
    url = rpc_url or settings.rpc_url()
    if url is None:
        with Anvil(state_file=state_file or settings.chain_state_file()) as w3:
            yield w3
        return
    # cache_allowed_requests: web3 asks eth_chainId before every call otherwise (half of all requests, measured)
    w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": 30}, cache_allowed_requests=True))
    try:
        w3.eth.chain_id
    except Exception as exc:  # any transport or protocol failure means the same thing to the caller
        raise ChainError(f"no Ethereum node answers at {url}: {exc}") from None
    yield w3
