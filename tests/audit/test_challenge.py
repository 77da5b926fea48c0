"""`lepton-ledger challenge` on a copy of a demo folder: a failed check becomes an on-chain challenge carrying
the check's digest, the admin upholds it, the stake and the round's reward go to the slash recipient, and a
second challenge of the same update, or any bad input, is refused with a clear error and no transaction.

The demo waits out every round's dispute window (it claims the payouts), so the module fixture adds round 3 to
a copy of the audit tests' demo (conftest.add_round: real DP training, the library's Coordinator), finalized
just now and still inside its window: what an auditor finds when it audits in time.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner
from web3 import Web3

from lepton_ledger.chain.anvil import Anvil, advance_time
from lepton_ledger.chain.artifacts import load_artifact
from lepton_ledger.chain.deployment import Deployment
from lepton_ledger.chain.state import Challenge, Pool, Round
from lepton_ledger.challenges.challenge import canonical_json
from lepton_ledger.cli import app
from lepton_ledger.rounds.demo import REQUIRED_STAKE as STAKE
from lepton_ledger.rounds.report import content_digest, fetch_by_digest
from lepton_ledger.storage.local import LocalStore
from lepton_ledger.units import ChallengeStatus

NAMES = ("partner1", "partner2")


def _parties(workdir: Path) -> dict[str, dict]:
    return json.loads((workdir / "keys" / "dev-keys.json").read_text())["parties"]


@contextmanager
def _chain(workdir: Path) -> Iterator[Web3]:
    """The folder's chain, restarted from its state (saved back at the end) with its clock where it stopped."""
    document = json.loads((workdir / "deployment.json").read_text())
    with Anvil(state_file=workdir / document["state_file"], chain_id=document["chain_id"]) as w3:
        yield w3


def _bind(w3, workdir: Path) -> tuple[Deployment, object]:
    document = json.loads((workdir / "deployment.json").read_text())
    token = w3.eth.contract(address=document["reward_token"], abi=load_artifact("LeptonToken").abi)
    return Deployment.at(w3, document["contracts"]), token


def _check(name: str, ok: bool, message: str, **where) -> dict:
    return {
        "name": name,
        "ok": ok,
        "agreement_id": None,
        "round": None,
        "partner": None,
        "cid": None,
        "message": message,
        "evidence": {},
        **where,
    }


@pytest.fixture(scope="module")
def prepared(demo_single, extra_round, tmp_path_factory) -> tuple[Path, dict]:
    """The audit tests' demo (agreement 1, two rounds whose windows it waited out) plus round 3, finalized just
    now by the honest coordinator: inside its dispute window, what an auditor finds when it audits in time."""
    workdir = tmp_path_factory.mktemp("challenge") / "demo"
    shutil.copytree(demo_single, workdir)
    added = extra_round(workdir)
    parties = _parties(workdir)
    with _chain(workdir) as w3:
        d, _ = _bind(w3, workdir)
        report_digest = Round.read(d.ledger.functions.round(1, added["round"])).report_digest
    report = json.loads(fetch_by_digest(LocalStore(workdir / "store", durable=False), report_digest))
    names = {parties[n]["address"]: n for n in NAMES}
    return workdir, {
        "agreement_id": 1,
        "round": added["round"],
        "treasury": parties["treasury"]["address"],
        "partners": {names[a]: a for a in added["partners"]},
        "envelopes": {names[a]: cid for a, cid in added["envelopes"].items()},
        "payouts": {line["partner"]: int(line["payout"]) for line in report["partners"]},
    }


@pytest.fixture
def case(prepared, tmp_path) -> tuple[Path, dict, Path]:
    """A fresh copy of the prepared folder, and an audit result of the shape `audit --json` writes."""
    source, info = prepared
    workdir = tmp_path / "demo"
    shutil.copytree(source, workdir)
    a, r, p1, p2 = info["agreement_id"], info["round"], info["partners"]["partner1"], info["partners"]["partner2"]
    checks = [
        _check("cids_resolve", True, "every CID resolves", agreement_id=a, round=r, partner=p1),
        _check(
            "envelope_decrypts",
            False,
            "envelope does not decrypt with the auditor key",
            agreement_id=a,
            round=r,
            partner=p1,
            cid=info["envelopes"]["partner1"],
            evidence={"tx_hash": "0x01", "error": "InvalidTag"},
        ),
        _check("aggregate_recomputed", False, "aggregate differs", agreement_id=a, round=r),
        _check(
            "manifest_signature",
            False,
            "signature recovers to another address",
            agreement_id=1,
            round=1,
            partner=p1,
            evidence={"recovered": p2},
        ),
        _check("epsilon_recomputed", False, "epsilon differs", agreement_id=a, round=r, partner=p2),
    ]
    audit = workdir.parent / "audit.json"
    audit.write_text(
        json.dumps(
            {"ok": False, "chain_id": 31337, "contracts": {}, "audited_at_block": 1, "checks": checks, "rounds": []}
        )
    )
    return workdir, info, audit


def _cli(*args: str | Path, group: str = "challenge"):
    """`lepton-ledger <group> ARGS...` (the challenge group by default)."""
    return CliRunner().invoke(app, [group, *(str(a) for a in args)])


def _arbiter(*args: str | Path):
    return _cli(*args, group="arbiter")


def _chain_fingerprint(workdir: Path) -> tuple[int, int]:
    """Latest block and total transactions in the saved chain state: unchanged means nothing was sent."""
    state = json.loads((workdir / "chain-state.json").read_text())
    return int(state["best_block_number"]), len(state["transactions"])


@pytest.fixture
def keystore(case, tmp_path, monkeypatch) -> None:
    """The demo's admin and auditor keys in an encrypted keystore (cheap scrypt), unlocked by the env password."""
    from lepton_ledger.keys import Keystore

    monkeypatch.setenv("LEPTON_KEYSTORE_DIR", str(tmp_path / "keystore"))
    monkeypatch.setenv("LEPTON_KEYSTORE_PASSWORD", "correct horse")
    parties = _parties(case[0])
    for role in ("auditor", "admin"):
        Keystore(tmp_path / "keystore", scrypt_n=2**10).import_key(role, parties[role]["ethereum_private_key"])


def test_failed_check_is_challenged_upheld_and_slashed(case, keystore):
    """The whole flow against one running chain (--rpc-url, keys from the keystore): the steps a person runs."""
    workdir, info, audit = case
    a, r, partner = info["agreement_id"], info["round"], info["partners"]["partner1"]
    window = int(json.loads((workdir / "deployment.json").read_text())["dispute_window"])
    with _chain(workdir) as w3:
        d, token = _bind(w3, workdir)
        live = (
            "--rpc-url",
            w3.provider.endpoint_uri,
            "--deployment",
            workdir / "deployment.json",
            "--ipfs",
            workdir / "store",
        )
        treasury_before = token.functions.balanceOf(info["treasury"]).call()

        raised = _cli("raise", "--from-audit", audit, "--check", 1, "--key", "auditor", "--json", *live)
        again = _cli(
            "raise",
            "--from-audit",
            audit,
            "--agreement",
            a,
            "--round",
            r,
            "--partner",
            partner,
            "--key",
            "auditor",
            *live,
        )
        early = _cli("slash", 1, "--key", "auditor", *live)
        not_admin = _arbiter("rule", 1, "--uphold", "--reason", "x", "--key", "auditor", *live)
        resolved = _arbiter(
            "rule", 1, "--uphold", "--reason", "the envelope is not the one committed", "--key", "admin", *live
        )
        in_window = _cli("slash", 1, "--key", "auditor", *live)
        advance_time(w3, window + 1)
        slashed = _cli("slash", 1, "--key", "auditor", "--json", *live)
        forfeited = _cli("forfeit", 1, "--key", "auditor", "--json", *live)
        twice = _cli("forfeit", 1, "--key", "auditor", *live)
        shown = _cli("show", *live[:4])  # reads the chain only: no store
        late = _cli("raise", "--from-audit", audit, "--check", 4, "--key", "auditor", *live)

        (ev_raised,) = d.ledger.events.ChallengeRaised().get_logs(from_block=0)
        (ev_resolved,) = d.ledger.events.ChallengeResolved().get_logs(from_block=0)
        (ev_executed,) = d.ledger.events.ChallengeExecuted().get_logs(from_block=0)
        (ev_slashed,) = d.vault.events.Slashed().get_logs(from_block=0)
        (ev_forfeit,) = d.vault.events.RewardForfeited().get_logs(from_block=0)
        stake_left = d.vault.functions.stakeOf(a, partner).call()
        other_stake = d.vault.functions.stakeOf(a, info["partners"]["partner2"]).call()
        treasury_after = token.functions.balanceOf(info["treasury"]).call()
        pool = Pool.read(d.vault.functions.pool(a))
        claimable, unallocated = d.vault.functions.claimable(a).call(), d.vault.functions.unallocated(a).call()
        status = Challenge.read(d.ledger.functions.challengeOf(1)).status

    assert raised.exit_code == 0, raised.output
    out = json.loads(raised.output)
    check = json.loads(audit.read_text())["checks"][1]
    assert out["challenge_id"] == 1 and out["partner"] == partner
    assert out["evidence_digest"] == "0x" + content_digest(canonical_json(check)).hex()
    assert LocalStore(workdir / "store", durable=False).get(out["evidence_cid"]) == canonical_json(check)
    assert again.exit_code == 1 and "already challenged: challenge 1 (Open)" in again.output
    assert early.exit_code == 1 and "challenge 1 is Open" in early.output
    assert not_admin.exit_code == 1 and "is not the arbiter of agreement" in not_admin.output
    assert resolved.exit_code == 0, resolved.output
    assert in_window.exit_code == 1 and "dispute window runs until chain time" in in_window.output
    assert slashed.exit_code == 0 and json.loads(slashed.output)["amount"] == str(STAKE), slashed.output
    reward = info["payouts"][partner]
    assert forfeited.exit_code == 0 and reward > 0, forfeited.output
    assert json.loads(forfeited.output)["amount"] == str(reward)
    assert twice.exit_code == 1 and "already claimed or forfeited" in twice.output
    assert shown.exit_code == 0 and shown.output.startswith(f"challenge 1: Executed, {partner} in round {r} ")
    assert late.exit_code == 1 and f"the dispute window of round {r} of agreement {a} closed" in late.output

    raised_args = ev_raised["args"]
    assert (raised_args["agreementId"], raised_args["round"], raised_args["partner"]) == (a, r, partner)
    assert "0x" + bytes(raised_args["evidenceDigest"]).hex() == out["evidence_digest"]
    assert ev_resolved["args"]["upheld"] is True and ev_executed["args"]["challengeId"] == 1
    assert (ev_slashed["args"]["partner"], ev_slashed["args"]["amount"]) == (partner, STAKE)
    assert ev_slashed["args"]["recipient"] == info["treasury"] == ev_forfeit["args"]["recipient"]
    assert ev_forfeit["args"]["amount"] == reward
    assert stake_left == 0 and other_stake == STAKE and status is ChallengeStatus.EXECUTED
    assert treasury_after - treasury_before == STAKE + reward
    assert pool.stake_slashed == STAKE and pool.slashed == reward
    assert pool.funded == pool.paid + claimable + pool.slashed + unallocated + pool.reclaimed


BAD = [
    (
        ("challenge", "raise", "--from-audit", "{audit}", "--check", "99"),
        "there is no check 99: the audit has 5 checks",
    ),
    (("challenge", "raise", "--from-audit", "{audit}", "--check", "0"), "check 0 (cids_resolve) passed"),
    (
        ("challenge", "raise", "--from-audit", "{audit}", "--check", "2"),
        "check 2 (aggregate_recomputed) names no partner: it judges the coordinator's results",
    ),
    (
        ("challenge", "raise", "--from-audit", "{audit}", "--check", "3"),
        "the dispute window of round 1 of agreement 1 closed",
    ),
    (
        ("challenge", "raise", "--from-audit", "{audit}", "--check", "4", "--as", "partner1"),
        "does not hold the auditor role",
    ),
    (
        ("challenge", "raise", "--from-audit", "{audit}", "--check", "1", "--agreement", "1"),
        "either --check, or --agreement",
    ),
    (("challenge", "raise", "--from-audit", "{workdir}/missing.json", "--check", "1"), "no audit file at"),
    (
        ("challenge", "raise", "--agreement", "1", "--round", "3", "--partner", "{p1}", "--evidence", "{lists}"),
        "the evidence must be a non-empty JSON object",
    ),
    (
        ("challenge", "raise", "--agreement", "1", "--round", "3", "--partner", "0xnope", "--evidence", "{why}"),
        "partner is not an address: '0xnope'",
    ),
    (
        ("challenge", "raise", "--check", "1", "--from-audit", "{audit}", "--key", "someone", "--as", "auditor"),
        "not both",
    ),
    (("arbiter", "rule", "1", "--uphold", "--reason", "x"), "there is no challenge 1: none was ever raised"),
    (("challenge", "slash", "7"), "there is no challenge 7"),
    # the coordinator's results (ResultsCourt)
    (("challenge", "raise", "--from-audit", "{audit}", "--agreement", "1"), "give both --agreement and --round"),
    (
        ("challenge", "raise", "--from-audit", "{audit}", "--agreement", "1", "--round", "1"),
        "the audit has no failed aggregate_recomputed, scores_and_payouts, rejections_recheck, rules_as_signed check of round 1",
    ),
    (("challenge", "raise", "--from-audit", "{audit}", "--as", "partner1"), "does not hold the auditor role"),
    (
        ("arbiter", "rule", "1", "--uphold", "--reason", "x", "--results"),
        "there is no results challenge 1: none was ever raised",
    ),
    (("arbiter", "lapse", "2", "--results"), "there is no results challenge 2"),
    (("challenge", "claim-bond", "1", "--as", "partner1"), "nothing of a slashed bond is owed"),
    (("challenge", "claim-bond", "1", "--as", "auditor"), "is not a party of agreement 1"),
]


def test_bad_input_is_refused_clearly_and_sends_nothing(case):
    workdir, info, audit = case
    lists, why = workdir.parent / "list.json", workdir.parent / "why.json"
    lists.write_text("[1]")
    why.write_text('{"why": "a reason"}')
    names = {"audit": audit, "workdir": workdir, "p1": info["partners"]["partner1"], "lists": lists, "why": why}
    before = _chain_fingerprint(workdir)
    blocks_before = sorted(p.name for p in (workdir / "store" / "blocks").rglob("*") if p.is_file())
    for args, message in BAD:
        result = _cli(*(a.format(**names) for a in args[1:]), "--workdir", workdir, group=args[0])
        assert result.exit_code == 1, (args, result.output)
        assert result.output.startswith("error: ") and message in result.output, (args, result.output)
    assert _chain_fingerprint(workdir) == before
    assert sorted(p.name for p in (workdir / "store" / "blocks").rglob("*") if p.is_file()) == blocks_before  # none put


def test_challenge_from_a_real_audit_of_a_tampered_store(case, tmp_path):
    from lepton_ledger.audit import audit_workdir
    from lepton_ledger.storage.cid import b32encode, parse_cid

    workdir, info, _ = case
    a, r, partner = info["agreement_id"], info["round"], info["partners"]["partner1"]
    key = b32encode(parse_cid(info["envelopes"]["partner1"]).multihash)  # LocalStore's block file name
    (block,) = (workdir / "store").rglob(key)
    data = bytearray(block.read_bytes())
    data[len(data) // 2] ^= 0x01
    block.write_bytes(bytes(data))

    result = audit_workdir(workdir, state_path=tmp_path / "audit-state.sqlite", full=True).to_dict()
    audit = tmp_path / "tampered-audit.json"
    audit.write_text(json.dumps(result))
    failed = [
        i
        for i, c in enumerate(result["checks"])
        if not c["ok"] and (c["agreement_id"], c["round"], c["partner"]) == (a, r, partner)
    ]
    assert failed, "the audit must fail a check of the tampered envelope"

    raised = _cli(
        "raise", "--from-audit", audit, "--agreement", a, "--round", r, "--partner", partner, "--workdir", workdir
    )
    assert raised.exit_code == 0, raised.output
    check = result["checks"][failed[0]]
    assert f"check {failed[0]} ({check['name']})" in raised.output
    assert "0x" + content_digest(canonical_json(check)).hex() in raised.output


def test_a_dismissed_challenge_frees_the_update_for_another(case, keystore):
    workdir, info, audit = case
    with _chain(workdir) as w3:
        live = (
            "--rpc-url",
            w3.provider.endpoint_uri,
            "--deployment",
            workdir / "deployment.json",
            "--ipfs",
            workdir / "store",
        )
        refused = _cli("raise", "--from-audit", audit, "--check", 1, "--key", "auditor", "--as", "auditor", *live)
        raised = _cli("raise", "--from-audit", audit, "--check", 1, "--key", "auditor", *live)
        dismissed = _arbiter(
            "rule", 1, "--dismiss", "--reason", "the envelope was re-published", "--key", "admin", *live
        )
        again = _cli("raise", "--from-audit", audit, "--check", 1, "--key", "auditor", "--json", *live)
        d, _ = _bind(w3, workdir)
        records = [Challenge.read(d.ledger.functions.challengeOf(i)) for i in (1, 2)]
    assert refused.exit_code == 1 and "not both" in refused.output
    assert raised.exit_code == 0 and dismissed.exit_code == 0, (raised.output, dismissed.output)
    assert again.exit_code == 0 and json.loads(again.output)["challenge_id"] == 2, again.output
    assert [c.status for c in records] == [ChallengeStatus.DISMISSED, ChallengeStatus.OPEN]
    assert {c.partner for c in records} == {info["partners"]["partner1"]}  # both against the check's partner
    assert {c.challenger for c in records} == {_parties(workdir)["auditor"]["address"]}  # the keystore's auditor
