"""lepton-ledger: an incentive and data-sharing ledger for partners who train models together under
differential privacy, with budgets enforced on-chain and payouts earned by measured contribution.

Importing the package imports neither brownie nor any heavy dependency; each subpackage loads what it needs.
"""

import os as _os
from importlib.util import find_spec as _find_spec

__version__ = "0.1.0"

# Keccak from pysha3's C extension (safe-pysha3, a dependency) rather than pycryptodome's, eth_hash's first choice:
# pycryptodome makes four foreign calls a hash, each letting go of the interpreter lock, so with a round's parties
# on threads every hash of a few bytes (selectors, checksummed addresses, typed-data digests: hundreds a round)
# waited to take the lock back. Set before any hash is taken; an ETH_HASH_BACKEND set by the user wins.
if _find_spec("sha3") is not None:
    _os.environ.setdefault("ETH_HASH_BACKEND", "pysha3")
