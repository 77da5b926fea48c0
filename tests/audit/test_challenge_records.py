"""The JSON form of the ledger's and the court's challenge records (``challenge list --json``): their fields in
order, digests 0x-hex (challenges.challenge.JsonRecord)."""

from __future__ import annotations

import json

from lepton_ledger.challenges.challenge import ChallengeRecord
from lepton_ledger.challenges.results import ResultsChallenge


def test_challenge_records_read_as_json_with_their_fields_in_order_and_digests_in_hex():
    ledger = ChallengeRecord(1, "Open", 2, 3, "0xP", "0xC", 5, b"\x01" * 32, bytes(32))
    court = ResultsChallenge(4, "Upheld", "payouts", 3, 6, 2, "0xC", b"\x02" * 32, b"\x03" * 32)
    assert json.dumps(ledger.to_dict()) == json.dumps(
        {
            "challenge_id": 1,
            "status": "Open",
            "agreement_id": 2,
            "round": 3,
            "partner": "0xP",
            "challenger": "0xC",
            "raised_at": 5,
            "evidence_digest": "0x" + "01" * 32,
            "ruling_digest": "0x" + "00" * 32,
        }
    )
    assert json.dumps(court.to_dict()) == json.dumps(
        {
            "challenge_id": 4,
            "status": "Upheld",
            "kind": "payouts",
            "round": 3,
            "raised_at": 6,
            "agreement_id": 2,
            "challenger": "0xC",
            "evidence_digest": "0x" + "02" * 32,
            "ruling_digest": "0x" + "03" * 32,
        }
    )
