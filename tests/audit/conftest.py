"""Fixtures of the audit tests: demo folders (run once per session), a clean audit's state, fresh copies to
tamper with, and one more round on a copy's chain in which a partner or the coordinator cheats.

The extra round: the coordinator amends the agreement for one more round (the demo used them all), the
partners sign the new version, the pool is funded for it, the round opens on round 2's aggregate, both
partners train with real DP-SGD (Opacus) in this process and commit, and the round closes -- honestly through
``Coordinator.close_round``, or by :func:`dishonest_close`, a coordinator written here that drops an update from
the aggregate or alters a score in its report while doing everything else as the library does.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from lepton_ledger import fl
from lepton_ledger.audit import audit_workdir
from lepton_ledger.chain.anvil import Anvil, dev_account
from lepton_ledger.chain.artifacts import load_artifact
from lepton_ledger.chain.deployment import Deployment, DevRoles
from lepton_ledger.chain.merkle import PayoutTree
from lepton_ledger.chain.state import AgreementState, Partner, Round, RoundConfig, Terms
from lepton_ledger.chain.transactions import Transactor
from lepton_ledger.chain.typed_data import (
    UpdateCommitment,
    sign_digest,
    update_commitment_digest,
)
from lepton_ledger.envelope import seal
from lepton_ledger.envelope.manifest import DPRecord
from lepton_ledger.envelope.tensors import deserialize_tensors, serialize_tensors
from lepton_ledger.fl.accounting import epsilon_from_history
from lepton_ledger.protocol.jsonio import canonical_json
from lepton_ledger.rounds.coordinator import Coordinator
from lepton_ledger.rounds.demo import RoundRules, run_demo
from lepton_ledger.rounds.outbox import Outbox
from lepton_ledger.rounds.outcome import combine, judge, settle
from lepton_ledger.rounds.partner import MODEL_TRAINING, SignedCommitment
from lepton_ledger.rounds.report import (
    PartnerOutcome,
    RoundReport,
    cid_for_digest,
    fetch_by_digest,
    publish,
)
from lepton_ledger.storage.local import LocalStore

# The tampering fixtures below add rounds as the demo ran them before it told the incentive story: two equal IID
# partners paid by sample count.
OLD_STORY = {"free_rider": False, "non_iid": False, "payout_rule": fl.PayoutRule.BY_SAMPLE_COUNT}

AGREEMENT = 1
DELTA = 1e-5
MAX_NORM = 50.0  # the demo coordinator's norm bound


@pytest.fixture(scope="session", autouse=True)
def isolated_data_dir(tmp_path_factory):
    """Keeps the outboxes, accountants and default audit state of these tests out of the user's data dir."""
    previous = os.environ.get("LEPTON_DATA_DIR")
    os.environ["LEPTON_DATA_DIR"] = str(tmp_path_factory.mktemp("data-dir"))
    yield
    if previous is None:
        del os.environ["LEPTON_DATA_DIR"]
    else:
        os.environ["LEPTON_DATA_DIR"] = previous


@pytest.fixture(scope="session")
def demo_single(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("audit") / "single"
    run_demo(out, partners=2, rounds=2, mode="single", console=Console(quiet=True), **OLD_STORY)
    return out


@pytest.fixture(scope="session")
def demo_batched(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("audit") / "batched"
    # Also the robust path: a coordinate-wise median aggregate and Monte Carlo Shapley scores must re-compute too.
    run_demo(
        out,
        partners=2,
        rounds=2,
        mode="batched",
        **OLD_STORY,
        rules=RoundRules(aggregation="median", scoring="tmc_shapley"),
        console=Console(quiet=True),
    )
    return out


@pytest.fixture(scope="session")
def clean_audit(demo_single, tmp_path_factory):
    """The first (full) audit of the single-mode demo, and the state file it left."""
    state = tmp_path_factory.mktemp("audit-state") / "state.sqlite"
    return audit_workdir(demo_single, state_path=state), state


@pytest.fixture
def fresh_copy(tmp_path) -> Callable[..., Path]:
    """Copies a demo folder (and, when given, an audit state file with its event index) under tmp_path."""

    def copy(folder: Path, state: Path | None = None) -> Path:
        target = tmp_path / folder.name
        shutil.copytree(folder, target)
        if state is not None:
            for path in state.parent.glob(state.stem + "*"):
                shutil.copyfile(path, tmp_path / path.name)
        return target

    return copy


@pytest.fixture
def demo_summary() -> Callable[[Path], dict[str, Any]]:
    """Reads a demo folder's summary.json: what the demo says it did."""
    return lambda workdir: json.loads((workdir / "summary.json").read_text())


@pytest.fixture(scope="session")
def extra_round() -> Callable[..., dict[str, Any]]:
    """:func:`add_round` (a fixture, not an import: `from conftest import` finds whichever conftest was loaded
    last when several test folders run together)."""
    return add_round


@pytest.fixture
def cheating_close() -> Callable[..., None]:
    """:func:`dishonest_close`."""
    return dishonest_close


# -- one more round on a copy's chain ---------------------------------------------------------------------


def honest_submit(
    ctx: dict[str, Any], index: int, *, epsilon_shortfall: float = 0.0, scale: float = 1.0, samples: int | None = None
) -> str:
    """Partner `index` trains with DP-SGD, seals, puts and commits, as rounds.Partner does; a positive
    `epsilon_shortfall` makes it dishonest: it signs and commits that much less cumulative epsilon than its DP
    history gives; `scale` multiplies its update (a poisoned one, for the coordinator to reject); `samples`
    replaces its sample count in the manifest and the commitment. With ``ctx["batch"]`` (a list), the partner
    signs its commitment for the coordinator's batch instead of submitting it. Returns the envelope's CID."""
    account, w3, d = ctx["partners"][index], ctx["w3"], ctx["d"]
    split = ctx["split"]
    model = fl.build_model("logreg", split.input_dim, split.num_classes, seed=0)
    model.load_state_dict(deserialize_tensors(ctx["model_bytes"]))
    result = fl.train_local(
        model=model,
        data=split.partners[index],
        epochs=1,
        noise_multiplier=1.0,
        **MODEL_TRAINING["logreg"],  # the demo's batch, lr and clip for logreg
        delta=DELTA,
        seed=100 + index,
        device="cpu",
    )
    # The demo trains each partner with the same settings on the same data every round, so its two earlier
    # rounds had these DP parameters too (the auditor re-derives them from the manifests independently).
    cumulative = epsilon_from_history([result.dp.as_round()] * 3, DELTA) - epsilon_shortfall
    recipients = [Partner.read(d.partners.functions.partnerOf(a)).encryption_key for a in ctx["recipients"]]
    delta = {name: tensor * scale for name, tensor in result.delta.items()}
    sealed = seal(
        delta,
        signer_key=bytes(account.key),
        recipients=recipients,
        chain_id=w3.eth.chain_id,
        ledger=d.ledger.address,
        agreement_id=AGREEMENT,
        round=ctx["round"],
        base_model_digest=ctx["model_digest"],
        dp=DPRecord.from_params(result.dp),
        cumulative_epsilon=cumulative,
        sample_count=samples or result.sample_count,
        metrics=result.metrics,
    )
    cid, digest = publish(ctx["store"], sealed.data)
    m = sealed.manifest
    ctx["submitted"] = (cid, digest, sealed)
    if "batch" in ctx:
        commitment = UpdateCommitment(
            AGREEMENT,
            ctx["round"],
            account.address,
            digest,
            sealed.manifest_digest,
            m.cumulative_epsilon,
            m.sample_count,
        )
        signature = sign_digest(
            bytes(account.key), update_commitment_digest(w3.eth.chain_id, d.ledger.address, commitment)
        )
        ctx["batch"].append(SignedCommitment(commitment, signature, cid))
        return cid
    ctx["tx"].transact(
        d.ledger.functions.submitUpdate(
            AGREEMENT, ctx["round"], digest, sealed.manifest_digest, m.cumulative_epsilon, m.sample_count
        ),
        account.address,
    )
    return cid


def dishonest_close(
    coordinator: Coordinator,
    round_id: int,
    *,
    drop: str | None = None,
    score_shift: dict[str, float] | None = None,
    reject: str | None = None,
    report_fields: dict[str, Any] | None = None,
) -> None:
    """Closes the round as Coordinator.close_round does, except that `drop`'s accepted update is left out of the
    aggregate (the report still says it was accepted), `score_shift` is added to reported scores, `reject`'s
    valid update is rejected as over the norm bound (and left out of everything, consistently), and
    `report_fields` replace the report's fields of those names."""
    model_digest, commitment = coordinator.round_state(AGREEMENT, round_id)
    events = coordinator.commitments(AGREEMENT, round_id)
    opened, _ = coordinator.open_updates(events, model_digest)
    base = coordinator.base_state(model_digest)
    rules = coordinator.rules
    updates = {p: (e.tensors, e.manifest.sample_count) for p, e in opened.items()}
    accepted = {p: u for p, u in judge(updates, base, rules)[0].items() if p != reject}
    false_reason = {
        "code": "norm_exceeded",
        "tensor": None,
        "message": "update L2 norm exceeds the bound",
        "detail": {},
    }
    aggregate = combine(base, {p: u for p, u in accepted.items() if p != drop}, rules)
    reward = RoundConfig.read(coordinator.deployment.agreements.functions.roundConfig(AGREEMENT)).reward_per_round
    settled = settle(
        base, accepted, coordinator.evaluation, rules, reward=reward, payout_rule=fl.PayoutRule.BY_SAMPLE_COUNT
    )
    scores = {p: s + (score_shift or {}).get(p, 0.0) for p, s in settled.scores.items()}
    payouts = settled.payouts  # by sample count: the shifted scores change no payout
    store = coordinator.store
    aggregate_cid, aggregate_digest = publish(store, serialize_tensors(aggregate))
    lines = [
        PartnerOutcome(
            partner=e.partner,
            envelope_cid=cid_for_digest(bytes.fromhex(e.args["envelopeDigest"][2:])),
            manifest_digest=e.args["manifestDigest"],
            sample_count=int(e.args["sampleCount"]),
            cumulative_epsilon_fixed=int(e.args["cumulativeEpsilon"]),
            accepted=e.partner != reject,
            reasons=[false_reason] if e.partner == reject else [],
            score=scores.get(e.partner),
            payout=int(payouts.get(e.partner, 0)),
        )
        for e in events
    ]
    report = RoundReport(
        chain_id=coordinator.tx.w3.eth.chain_id,
        ledger=coordinator.deployment.ledger.address,
        agreement_id=AGREEMENT,
        round=round_id,
        base_model_digest="0x" + model_digest.hex(),
        eval_commitment="0x" + commitment.hex(),
        rules=rules,
        payout_rule="by_sample_count",
        reward=reward,
        partners=lines,
        aggregate_cid=aggregate_cid,
        aggregate_digest="0x" + aggregate_digest.hex(),
    )
    _, report_digest = publish(store, canonical_json({**report.to_dict(), **(report_fields or {})}))
    paid = {p: v for p, v in payouts.items() if v > 0}
    tree = PayoutTree(AGREEMENT, round_id, paid)
    coordinator.tx.transact(
        coordinator.deployment.ledger.functions.finalizeRound(
            AGREEMENT, round_id, aggregate_digest, report_digest, tree.root, tree.total
        ),
        coordinator.address,
    )


def free_ride(ctx: dict[str, Any], index: int) -> str:
    """Partner `index` trains nothing and commits the envelope the previous partner just submitted, as its own."""
    cid, digest, sealed = ctx["submitted"]
    m = sealed.manifest
    ctx["tx"].transact(
        ctx["d"].ledger.functions.submitUpdate(
            AGREEMENT, ctx["round"], digest, sealed.manifest_digest, m.cumulative_epsilon, m.sample_count
        ),
        ctx["partners"][index].address,
    )
    return cid


def add_round(
    workdir: Path,
    *,
    shortfall: dict[int, float] | None = None,
    scale: dict[int, float] | None = None,
    free_rider: int | None = None,
    close: Callable[[Coordinator, int], None] | None = None,
    samples: dict[int, int] | None = None,
) -> dict[str, Any]:
    """Adds round 3 to the copy's chain (saved back to its chain-state.json) and store; returns what it did:
    ``{"round", "envelopes": {partner: cid}, "partners": [addresses]}``. With `samples` (partner index: sample
    count), the commitments are signed and anchored in one batch, which (unlike a single submission) the ledger
    takes whatever sample count it signs."""
    deployment = json.loads((workdir / "deployment.json").read_text())
    keys = json.loads((workdir / "keys" / "dev-keys.json").read_text())["parties"]
    with Anvil(state_file=workdir / "chain-state.json", accounts=12) as w3:
        roles = DevRoles.from_dev_keys()
        partners = [dev_account(10), dev_account(11)]
        tx = Transactor(w3, [*roles.accounts(), *partners])
        d = Deployment.at(w3, deployment["contracts"])
        token = w3.eth.contract(address=deployment["reward_token"], abi=load_artifact("LeptonToken").abi)
        coord = roles.coordinator.address
        terms = Terms.read(d.agreements.functions.terms(AGREEMENT))
        terms = replace(terms, max_rounds=terms.max_rounds + 1)  # one more round
        tx.transact(d.agreements.functions.amend(AGREEMENT, terms.as_tuple()), coord)
        for account in partners:
            tx.transact(d.agreements.functions.sign(AGREEMENT), account.address)
        state = AgreementState.read(d.agreements.functions.agreementState(AGREEMENT))
        if state.active_version != state.version:  # the amendment is not in force yet
            tx.transact(d.agreements.functions.tryActivate(AGREEMENT), coord)
        reward = terms.reward_per_round
        tx.transact(token.functions.mint(coord, reward), roles.admin.address)
        tx.transact(token.functions.approve(d.vault.address, reward), coord)
        tx.transact(d.vault.functions.fund(AGREEMENT, reward), coord)

        store = LocalStore(workdir / "store", durable=False)
        split = fl.make_federated("digits", **{k: v for k, v in deployment["eval_set"].items() if k != "dataset"})
        coordinator = Coordinator(
            account=roles.coordinator,
            tx=tx,
            deployment=d,
            store=store,
            x25519_private=bytes.fromhex(keys["coordinator"]["x25519_private_key"]),
            events_path=workdir / "extra-events.sqlite",
            eval_set=split.eval_set,
            model_name="logreg",
            rules=RoundRules(max_norm=MAX_NORM),
            payout_rule=fl.PayoutRule.BY_SAMPLE_COUNT,
            # copies of one demo chain look alike to the default outbox: each gets its own
            outbox=Outbox(workdir / "coordinator-outbox.sqlite"),
        )
        previous = Round.read(d.ledger.functions.round(AGREEMENT, 2))
        model_bytes = fetch_by_digest(store, previous.aggregate_digest)
        _, model_digest = coordinator.publish_model(deserialize_tensors(model_bytes))
        deadline = w3.eth.get_block("latest")["timestamp"] + 3600
        round_id = coordinator.open_round(AGREEMENT, model_digest, deadline)
        ctx = {
            "w3": w3,
            "tx": tx,
            "d": d,
            "store": store,
            "split": split,
            "partners": partners,
            "round": round_id,
            "model_bytes": model_bytes,
            "model_digest": model_digest,
            "recipients": [coord, roles.auditor.address],
        }
        if samples is not None:
            ctx["batch"] = []
        envelopes = {
            partners[i].address: free_ride(ctx, i)
            if i == free_rider
            else honest_submit(
                ctx,
                i,
                epsilon_shortfall=(shortfall or {}).get(i, 0.0),
                scale=(scale or {}).get(i, 1.0),
                samples=(samples or {}).get(i),
            )
            for i in range(2)
        }
        if samples is not None:
            coordinator.anchor_batch(AGREEMENT, round_id, ctx["batch"])
        if close is None:
            coordinator.close_round(AGREEMENT, round_id)
        else:
            close(coordinator, round_id)
    return {"round": round_id, "envelopes": envelopes, "partners": [a.address for a in partners]}
