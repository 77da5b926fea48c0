"""A refusal names a status by the contract's enum, never by its number."""

import pytest

from lepton_ledger.chain.transactions import human_revert
from lepton_ledger.errors import ContractReverted


@pytest.mark.parametrize(
    ("error", "status", "name"),
    [
        ("PartnerRegistryInvalidStatus", 3, "Suspended"),
        ("AgreementRegistryInvalidStatus", 3, "Terminated"),
        ("RoundLedgerInvalidChallengeStatus", 4, "Executed"),
        ("ResultsCourtChallengeNotOpen", 2, "Upheld"),
    ],
)
def test_a_status_argument_prints_by_name(error, status, name):
    assert human_revert(ContractReverted(error, {"id": 7, "status": status})) == f"{error}(id=7, status={name})"
