"""Each enum of lepton_ledger.units against its Solidity declaration, member for member, and the fixed-point
conversions at their edges."""

import re
from pathlib import Path

import pytest

from lepton_ledger.errors import ConfigurationError
from lepton_ledger.units import (
    AgreementStatus,
    ChallengeStatus,
    DisputeStatus,
    PartnerStatus,
    PayoutRule,
    ResultsChallengeStatus,
    ResultsKind,
    RoundStatus,
    cap_to_fixed,
    epsilon_to_fixed,
    fixed_to_epsilon,
)

INTERFACES = Path(__file__).resolve().parent.parent / "interfaces"

DECLARED_IN = [
    (PayoutRule, "IAgreementRegistry", "PayoutRule"),
    (AgreementStatus, "IAgreementRegistry", "AgreementStatus"),
    (PartnerStatus, "IPartnerRegistry", "PartnerStatus"),
    (RoundStatus, "IRoundLedger", "RoundStatus"),
    (ChallengeStatus, "IRoundLedger", "ChallengeStatus"),
    (DisputeStatus, "IRoundLedger", "DisputeStatus"),
    (ResultsKind, "IResultsCourt", "ResultsKind"),
    (ResultsChallengeStatus, "IResultsCourt", "ChallengeStatus"),
]


def solidity_enum(interface: str, name: str) -> list[str]:
    source = (INTERFACES / f"{interface}.sol").read_text()
    body = re.search(rf"\benum {name}\s*\{{([^}}]*)\}}", source)
    assert body, f"{interface}.sol declares no enum {name}"
    without_comments = re.sub(r"//[^\n]*", "", body.group(1))
    return [member.strip() for member in without_comments.split(",") if member.strip()]


@pytest.mark.parametrize(("enum", "interface", "name"), DECLARED_IN, ids=[e.__name__ for e, _, _ in DECLARED_IN])
def test_enum_matches_its_solidity_declaration(enum, interface, name):
    assert [str(member) for member in enum] == solidity_enum(interface, name)
    assert [int(member) for member in enum] == list(range(len(enum)))


def test_a_member_prints_as_solidity_names_it():
    assert f"{RoundStatus.FINALIZED}" == "Finalized" and str(PayoutRule.BY_SAMPLE_COUNT) == "BySampleCount"
    assert RoundStatus(2) is RoundStatus.FINALIZED and RoundStatus.FINALIZED == 2


def test_fixed_point_rounds_the_safe_way():
    assert epsilon_to_fixed(0.1) == 100_001  # the float 0.1 is a little above 1/10: rounded up
    assert cap_to_fixed(0.1) == 100_000  # a cap is rounded down
    assert epsilon_to_fixed(0.0) == 0 and fixed_to_epsilon(1_500_000) == 1.5
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ConfigurationError, match="epsilon must be finite"):
            epsilon_to_fixed(bad)
    with pytest.raises(ConfigurationError, match="epsilon cap must be finite and > 0"):
        cap_to_fixed(0.0)
