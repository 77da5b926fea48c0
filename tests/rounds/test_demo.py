"""`lepton-ledger demo` end to end (2 partners, 2 rounds): the folder it leaves is enough to audit the run —
summary.json's payouts add up to the reward per round, the deployment is on the chain restarted from the
saved state, and every CID the summary names is in the block store."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from lepton_ledger.chain.anvil import Anvil
from lepton_ledger.chain.artifacts import load_artifact
from lepton_ledger.chain.deployment import Deployment
from lepton_ledger.chain.events import EventIndex
from lepton_ledger.chain.state import Round
from lepton_ledger.errors import ConfigurationError
from lepton_ledger.rounds import demo
from lepton_ledger.rounds.demo import RoundRules, run_demo
from lepton_ledger.rounds.partner import TrainingSettings
from lepton_ledger.storage.local import LocalStore
from lepton_ledger.units import RoundStatus


def _cids(round_summary: dict) -> list[str]:
    cids = round_summary["cids"]
    return [
        cids["model"],
        cids["aggregate"],
        cids["report"],
        *cids["envelopes"].values(),
        *([cids["batch"]] if "batch" in cids else []),
    ]


def test_demo_leaves_an_auditable_folder(tmp_path):
    out = tmp_path / "demo"
    result = run_demo(out, partners=2, rounds=2, mode="single", console=Console(quiet=True))

    summary = json.loads((out / "summary.json").read_text())
    assert "development keys" in summary["keys_note"] and (out / "keys" / "dev-keys.json").exists()
    reward = int(summary["reward_per_round"])
    assert [r["round"] for r in summary["per_round"]] == [1, 2]
    for r in summary["per_round"]:
        assert len(r["partners"]) == 2
        assert sum(int(p["payout"]) for p in r["partners"].values()) == reward
        assert all(p["epsilon"] > 0 and p["accepted"] for p in r["partners"].values())
        assert 0.0 <= r["accuracy"] <= 1.0 and r["gas_used"] > 0

    store = LocalStore(out / "store", durable=False)
    for r in summary["per_round"]:
        for cid in _cids(r):
            assert store.has(cid), cid

    deployment = json.loads((out / "deployment.json").read_text())
    assert deployment["contracts"] == {k: v for k, v in result.addresses.items() if k != "LeptonToken"}
    with Anvil(state_file=out / deployment["state_file"]) as w3:
        assert w3.eth.chain_id == deployment["chain_id"]
        for address in [*deployment["contracts"].values(), deployment["reward_token"]]:
            assert len(w3.eth.get_code(address)) > 0, address
        d = Deployment.at(w3, deployment["contracts"])
        for r in summary["per_round"]:
            on_chain = Round.read(d.ledger.functions.round(summary["agreement_id"], r["round"]))
            assert on_chain.status is RoundStatus.FINALIZED and on_chain.aggregate_digest != bytes(32)
        token = w3.eth.contract(address=deployment["reward_token"], abi=load_artifact("LeptonToken").abi)
        for address in summary["per_round"][0]["partners"]:
            claimed = sum(int(r["partners"][address]["claimed"]) for r in summary["per_round"])
            assert token.functions.balanceOf(address).call() == claimed


def test_demo_tells_the_incentive_story(tmp_path):
    """Partners that differ (non-IID, unequal sizes), one free-rider, payouts by measured contribution: the
    payouts differ, the free-rider earns next to nothing, and the privacy spent differs with each data size."""
    out = tmp_path / "story"
    run_demo(out, partners=3, rounds=2, console=Console(quiet=True))
    summary = json.loads((out / "summary.json").read_text())
    reward = int(summary["reward_per_round"])
    assert summary["payout_rule"] == "proportional" and summary["free_riders"] == ["partner3"]
    assert "non-IID" in summary["data"]
    for r in summary["per_round"]:
        lines = {p["name"]: p for p in r["partners"].values()}
        assert len({p["samples"] for p in lines.values()}) == 3  # unequal sizes
        assert len({round(p["epsilon"], 6) for p in lines.values()}) == 3  # so unequal privacy spent
        payouts = {name: int(p["payout"]) for name, p in lines.items()}
        assert sum(payouts.values()) == reward and len(set(payouts.values())) == 3
        assert payouts["partner3"] <= reward // 20 and lines["partner3"]["free_rider"]
        honest = max(payouts, key=payouts.get)
        assert lines[honest]["score"] > lines["partner3"]["score"]


def test_demo_trains_logreg_as_measured_for_its_rounds_and_the_free_rider_next_to_nothing():
    """bench/fl_utility.py --demo-data measured these for logreg in 5 rounds; the other models keep the defaults."""
    honest = demo._training("logreg", seed=0, free_rider=False)
    assert (honest.batch_size, honest.lr, honest.max_grad_norm, honest.noise_multiplier) == (32, 1.0, 1.0, 1.0)
    assert demo._training("logreg", seed=2, free_rider=True).lr == demo.FREE_RIDER_LR
    mlp = demo._training("mlp", seed=0, free_rider=False)
    assert (mlp.batch_size, mlp.lr, mlp.max_grad_norm) == (64, TrainingSettings.lr, TrainingSettings.max_grad_norm)


def test_a_models_own_training_settings_are_the_demos_unless_given_otherwise():
    """The CLI's training commands build their settings the same way (``--batch-size``/``--lr`` left out: None)."""
    assert TrainingSettings.for_model("logreg") == demo._training("logreg", seed=0, free_rider=False)
    given = TrainingSettings.for_model("logreg", batch_size=None, lr=0.25, epochs=3)
    assert (given.batch_size, given.lr, given.epochs) == (32, 0.25, 3)
    assert TrainingSettings.for_model("mlp") == TrainingSettings(model="mlp")


def test_demo_runs_the_late_fusion_model(tmp_path):
    out = tmp_path / "fusion"
    run_demo(out, partners=2, rounds=1, model="fusion", free_rider=False, console=Console(quiet=True))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == "fusion" and json.loads((out / "deployment.json").read_text())["model"] == "fusion"
    (r,) = summary["per_round"]
    assert r["accuracy"] > r["accuracy_before"] and all(p["accepted"] for p in r["partners"].values())


def test_demo_batched_mode_anchors_one_batch_per_round(tmp_path):
    out = tmp_path / "batched"
    run_demo(out, partners=2, rounds=1, mode="batched", console=Console(quiet=True))
    summary = json.loads((out / "summary.json").read_text())
    (r,) = summary["per_round"]
    assert summary["mode"] == "batched" and "batch" in r["cids"]
    assert sum(int(p["payout"]) for p in r["partners"].values()) == int(summary["reward_per_round"])
    store = LocalStore(out / "store", durable=False)
    assert all(store.has(cid) for cid in _cids(r))

    # The restarted chain's events, indexed by agreement and round: the whole round is there, in order.
    deployment = json.loads((out / "deployment.json").read_text())
    with Anvil(state_file=out / deployment["state_file"]) as w3:
        d = Deployment.at(w3, deployment["contracts"])
        index = EventIndex(
            w3,
            {
                "PartnerRegistry": d.partners,
                "AgreementRegistry": d.agreements,
                "RewardVault": d.vault,
                "RoundLedger": d.ledger,
            },
            tmp_path / "events.sqlite",
        )
        index.sync()
        names = [e.event for e in index.events(agreement_id=summary["agreement_id"], round=r["round"])]
        claims = index.events("Claimed", agreement_id=summary["agreement_id"])
    assert names[0] == "RoundOpened" and names.count("BatchCommitted") == 1 and "UpdateSubmitted" not in names
    assert names.index("RoundFinalized") < names.index("Allocated") < names.index("Claimed")
    paid = {a: p["claimed"] for a, p in r["partners"].items() if p["claimed"] != "0"}  # the free-rider earned 0
    assert {e.partner: str(e.args["amount"]) for e in claims} == paid


def test_demo_refuses_rules_it_cannot_run_before_anything_starts(tmp_path):
    for rules, partners, message in [
        ({"aggregation": "mean"}, 3, "unknown aggregation rule 'mean'"),
        ({"scoring": "banzhaf"}, 3, "unknown scoring method 'banzhaf'"),
        ({"aggregation": "krum"}, 2, "krum needs at least 3 partners"),
        ({"scoring": "exact_shapley"}, 17, "exact_shapley enumerates 2\\*\\*n subsets"),
    ]:
        with pytest.raises(
            ConfigurationError, match=message
        ):  # the rules refuse when made, or the demo before it starts
            run_demo(
                tmp_path / "refused",
                partners=partners,
                rounds=1,
                rules=RoundRules(**rules),
                console=Console(quiet=True),
            )
    assert not (tmp_path / "refused").exists()  # nothing was started or written


def test_demo_with_the_mlp_model_finalizes_and_audits_green_with_multi_block_artifacts(tmp_path):
    """Issue 11, item 1: a model over 256 KiB used to break the round (the model came back as its root node,
    every envelope was rejected). The demo's mlp is 1.2 MB: every artifact of the round spans several blocks."""
    from lepton_ledger.audit import audit_workdir

    out = tmp_path / "demo"
    run_demo(out, partners=2, rounds=1, model="mlp", console=Console(quiet=True))
    summary = json.loads((out / "summary.json").read_text())
    (r,) = summary["per_round"]
    assert all(p["accepted"] for p in r["partners"].values())
    store = LocalStore(out / "store", durable=False)
    for cid in [r["cids"]["model"], r["cids"]["aggregate"], *r["cids"]["envelopes"].values()]:
        assert len(store.get(cid)) > 4 * 262144, cid
    result = audit_workdir(out, state_path=tmp_path / "audit.sqlite")
    assert result.ok, [c.to_dict() for c in result.failed]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--partners", "100000"],
            (
                "error: the demo runs at most 40 partners (each needs a share of the digits "
                "data set and a funded development account), not 100000"
            ),
        ),
        (["--out", "{file}"], "error: --out {file} is a file, not a folder: name a folder for the demo's output"),
    ],
)
def test_demo_cli_names_what_it_cannot_run_in_one_line_and_starts_nothing(tmp_path, args, message):
    from typer.testing import CliRunner

    from lepton_ledger.cli import app

    file = tmp_path / "taken.txt"
    file.write_text("mine")
    argv = [a.replace("{file}", str(file)) for a in args]
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "out"), *argv], terminal_width=400)
    assert result.exit_code == 1
    assert result.output.strip() == message.replace("{file}", str(file))
    assert file.read_text() == "mine" and not (tmp_path / "out").exists()
