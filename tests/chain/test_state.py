"""Each typed struct of lepton_ledger.chain.state against the struct in the compiled ABI (wherever a contract
returns it), and decoding of what web3 returns."""

import json
import re
from dataclasses import fields, replace

import pytest

from lepton_ledger.chain import state
from lepton_ledger.errors import ChainError
from lepton_ledger.settings import artifacts_dir
from lepton_ledger.units import ChainEnum, PayoutRule, RoundStatus

STRUCTS = [
    state.Terms,
    state.AgreementState,
    state.RoundConfig,
    state.Partner,
    state.Round,
    state.Challenge,
    state.EntryDispute,
    state.ResultsChallenge,
    state.Bonds,
    state.Pool,
    state.Allocation,
]


def abi_structs() -> dict[str, list[dict]]:
    """Every struct some compiled contract's function returns, by its Solidity name, with its components."""
    found: dict[str, list[dict]] = {}
    for path in sorted(artifacts_dir().glob("*.json")):
        for entry in json.loads(path.read_text())["abi"]:
            for output in entry.get("outputs", []) if entry.get("type") == "function" else []:
                match = re.fullmatch(r"struct \w+\.(\w+)", output.get("internalType", ""))
                if match:
                    found[match.group(1)] = output["components"]
    return found


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@pytest.mark.parametrize("struct", STRUCTS, ids=[s.__name__ for s in STRUCTS])
def test_struct_matches_the_compiled_abi(struct):
    components = abi_structs()[struct.__name__]
    ours = fields(struct)
    assert len(ours) == len(components)
    for field, component in zip(ours, components, strict=True):
        # A fixed-point number keeps its Solidity name with the suffix _fixed (epsilonCap -> epsilon_cap_fixed).
        assert field.name in (snake(component["name"]), snake(component["name"]) + "_fixed")
        is_enum = isinstance(field.type, str) and field.type in {c.__name__ for c in ChainEnum.__subclasses__()}
        assert is_enum == component["internalType"].startswith("enum "), field.name
        if is_enum:
            assert component["internalType"].endswith("." + field.type) or field.type == "ResultsChallengeStatus"


def test_decode_converts_each_field_by_its_type():
    values = (2, 1, 3, 100, 200, 300, *([b"\x11" * 32] * 5), 10**18)
    r = state.Round.decode(values)
    assert r.status is RoundStatus.FINALIZED and r.payout_total == 10**18 and r.report_digest == b"\x11" * 32
    terms = state.Terms.decode(
        (b"\x00" * 32, ["0xA", "0xB"], "0xT", 5, 2, 8_000_000, 10**13, 1, 2, 3, 4, "0xC", "0xR", 10, 0)
    )
    assert terms.payout_rule is PayoutRule.BY_SAMPLE_COUNT and terms.parties == ("0xA", "0xB")
    assert terms.epsilon_cap == 8.0 and terms.delta == 1e-5
    amended = replace(terms, max_rounds=5).as_tuple()
    assert amended[1] == ["0xA", "0xB"] and amended[10] == 5 and state.Terms.decode(amended).max_rounds == 5


def test_decode_refuses_a_value_of_another_shape():
    with pytest.raises(ChainError, match=r"Round: the contract returned .* not the struct's 12 fields"):
        state.Round.decode((1, 2, 3))
    with pytest.raises(ChainError, match="Bonds"):
        state.Bonds.decode(b"\x00" * 4)


def test_an_event_struct_and_the_solidity_names_round_trip():
    pool = state.Pool.decode((10, 9, 8, 7, 6, 5, 4, 3))
    named = pool.by_solidity_name()
    assert named["stakeSlashed"] == 3 and list(named)[0] == "funded"
    assert state.Pool.from_event(named) == pool
    terms = {
        "termsDigest": "0x" + "ab" * 32,
        "parties": ["0xA"],
        "rewardToken": "0xT",
        "rewardPerRound": 1,
        "payoutRule": 0,
        "epsilonCap": 2_000_000,
        "delta": 10**13,
        "requiredStake": 0,
        "start": 1,
        "end": 2,
        "maxRounds": 3,
        "coordinator": "0xC",
        "arbiter": "0xR",
        "maxSampleCount": 4,
        "coordinatorBond": 5,
    }
    decoded = state.Terms.from_event(terms)
    assert (
        decoded.terms_digest == b"\xab" * 32
        and decoded.epsilon_cap == 2.0
        and decoded.payout_rule is PayoutRule.PROPORTIONAL
    )
    with pytest.raises(ChainError, match="Terms: the event has no 'coordinatorBond'"):
        state.Terms.from_event({k: v for k, v in terms.items() if k != "coordinatorBond"})
