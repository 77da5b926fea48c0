"""``rules_as_signed``, per finalized round: the round rules its report names (aggregation rule and parameters,
scoring method and parameters, norm bound) are those the parties signed, i.e. the terms document whose digest the
round's terms version holds (``rounds.roles.signed_rules``, seeded for the round as the coordinator runs them). A
signed digest whose document the store does not hold fails the check (the rules are unknown, not the defaults).
The other round checks re-derive the round by the report's rules; this one says whether those were the signed
ones. A failure is challenged in the results court (``ResultsKind.Rules``, ``challenge raise --from-audit``).
"""

from __future__ import annotations

from ...chain.state import Terms
from ...errors import LeptonError
from ...rounds.roles import TermsDocumentMissing, signed_rules
from ...storage.store import Store
from ..model import RULES_AS_SIGNED, CheckResult
from .training import RoundMaterial

__all__ = ["check_rules_as_signed"]


def check_rules_as_signed(m: RoundMaterial, store: Store, terms: Terms) -> CheckResult:
    """Compares the rules the round's report names (``m.rules``) with those of the signed terms document."""
    finalized, reported = m.record.finalized, m.rules
    assert finalized is not None and reported is not None
    where = (m.record.agreement_id, m.record.round, None, m.report_cid)
    evidence = {
        "tx_hash": finalized.tx_hash,
        "block": finalized.block_number,
        "terms_digest": "0x" + terms.terms_digest.hex(),
        "found": reported.report_fields(),
    }
    try:
        signed = signed_rules(store, terms, m.record.round)
    except TermsDocumentMissing as exc:  # a signed digest nobody produces: the rules are unknown, not the defaults
        return CheckResult(RULES_AS_SIGNED, False, str(exc), *where, evidence | {"expected": None})
    except LeptonError as exc:  # a terms document that is no JSON object, or names rules that cannot run
        return CheckResult(
            RULES_AS_SIGNED, False, f"the signed terms document names no round rules: {exc}", *where, evidence
        )
    differences = reported.differences(signed)
    evidence["expected"] = signed.report_fields()
    message = (
        f"the report's round rules are not the signed ones: {'; '.join(differences)}"
        if differences
        else "the report's round rules are the signed ones"
    )
    return CheckResult(RULES_AS_SIGNED, not differences, message, *where, evidence)
