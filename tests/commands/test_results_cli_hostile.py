"""`challenge raise --from-audit` with a forged or hostile audit file (a check name that is no string, an agreement
or round id past what the contracts take), and `challenge claim-bond` of an agreement id past uint256: refused with
one line, nothing sent, never a traceback. On a real chain: a fresh deployment, reached by the command before it
would send."""

from __future__ import annotations

import json

import cli_lines
import pytest
from cli_home import lepton_home
from test_trust_cli import refused, run

NOTHING = (
    "error: the audit has no failed aggregate_recomputed, scores_and_payouts, rejections_recheck, rules_as_signed check: "
    "nothing in the coordinator's results to challenge (a partner's check: --check N)"
)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with lepton_home(tmp_path_factory.mktemp("lepton-home")) as home:
        run(*cli_lines.deploy("--dispute-window", "600"))
        yield home


@pytest.mark.parametrize(
    "check",
    [
        {"name": ["scores_and_payouts"], "ok": False, "agreement_id": 1, "round": 1},
        {"name": {"scores_and_payouts": 1}, "ok": False, "agreement_id": 1, "round": 1},
        {"name": "scores_and_payouts", "ok": False, "agreement_id": 1, "round": 2**64},
        {"name": "aggregate_recomputed", "ok": False, "agreement_id": 2**256, "round": 1},
    ],
    ids=["name-list", "name-object", "round-past-uint64", "agreement-past-uint256"],
)
def test_a_forged_audit_check_is_refused_with_one_line(world, tmp_path, check):
    audit = tmp_path / "audit.json"
    audit.write_text(json.dumps({"ok": False, "checks": [check]}))
    assert refused("challenge", "raise", "--from-audit", str(audit), "--key", "auditor") == NOTHING


def test_claim_bond_of_an_agreement_id_past_uint256_is_refused_with_one_line(world):
    line = refused("challenge", "claim-bond", str(2**256), "--key", "partner-a")
    assert line == f"error: agreement ids run from 1 to 2^256 - 1, not {2**256}"
