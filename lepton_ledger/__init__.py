"""lepton-ledger: an incentive and data-sharing ledger for partners who train models together under
differential privacy, with budgets enforced on-chain and payouts earned by measured contribution.

Importing the package imports neither brownie nor any heavy dependency; each subpackage loads what it needs.
"""

__version__ = "0.1.0"
