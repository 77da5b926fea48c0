"""Crash safety of a whole round (docs/architecture.md, invariants: "a crash loses nothing": work resumes,
nothing is committed twice), on a real anvil with real processes.

A child process runs one step of the partner or the coordinator and SIGKILLs itself at a chosen checkpoint,
before and after each side effect (crash_driver.py); the test then calls the same step again, as a restarted
service would, and completes the round. Anvil itself is killed (SIGKILL) between a broadcast and its receipt and
restarted from its state file, without the blocks it had not saved. Every test ends with the round complete
exactly once: one RoundOpened, one UpdateSubmitted per partner (or one batch), one RoundFinalized, each claim
paid once, and the partner's persisted accountant equal to the chain's cumulative epsilon.
"""

from __future__ import annotations

import multiprocessing
import signal
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # crash_driver, also for the forkserver (it inherits sys.path)

import crash_driver
from agreement_setup import funded_agreement
from crash_driver import PARTNER_INDICES, World, make_coordinator, make_partner

from lepton_ledger import fl
from lepton_ledger.chain.anvil import Anvil, advance_time, dev_account
from lepton_ledger.chain.deployment import DevRoles
from lepton_ledger.chain.transactions import Transactor
from lepton_ledger.envelope.tensors import serialize_tensors
from lepton_ledger.errors import ChainError, ConfigurationError
from lepton_ledger.rounds.accountant_file import AccountantFile
from lepton_ledger.rounds.effects import put_data
from lepton_ledger.rounds.outbox import Outbox
from lepton_ledger.rounds.world import build_world
from lepton_ledger.storage.local import LocalStore

DISPUTE_WINDOW = 600


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """One anvil (with a state file, restartable on its port), the system deployed, a reward token, the
    coordinator, the auditor and two approved partners registered with X25519 keys."""
    folder = tmp_path_factory.mktemp("chain")
    anvil = Anvil(state_file=folder / "chain-state.json")
    w3 = anvil.start()
    try:
        roles = DevRoles.from_dev_keys()
        partners = {name: dev_account(i) for name, i in PARTNER_INDICES.items()}
        tx = Transactor(w3, [*roles.accounts(), *partners.values()])
        built = build_world(tx, partners, dispute_window=DISPUTE_WINDOW, roles=roles)
        yield SimpleNamespace(
            anvil=anvil,
            w3=w3,
            d=built.deployment,
            token=built.token,
            roles=roles,
            partners=partners,
            keys=built.x25519,
            split=fl.make_federated("digits", num_partners=2, seed=0),
            store_dir=folder / "store",
        )
    finally:
        anvil.stop()


@pytest.fixture(scope="module")
def forkserver():
    """Children forked from a server that has imported torch, Opacus, web3 and lepton_ledger once."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(crash_driver.PRELOAD)
    return context


@pytest.fixture
def world(chain, tmp_path) -> World:
    return World(
        url=chain.anvil.url,
        addresses=chain.d.addresses(),
        store_dir=chain.store_dir,
        split=chain.split,
        coordinator_x25519=chain.keys["coordinator"],
        folder=tmp_path,
    )


def new_agreement(chain, names: list[str]) -> int:
    """A fresh active, funded agreement between the partners `names`. A fresh Transactor each time: the
    processes under test send from the same accounts."""
    partners = [chain.partners[n] for n in names]
    tx = Transactor(chain.w3, [*chain.roles.accounts(), *partners])
    return funded_agreement(tx, chain.d, chain.token, chain.roles, partners, store=LocalStore(chain.store_dir))


def recipients(chain) -> list[str]:
    return [chain.roles.coordinator.address, chain.roles.auditor.address]


def initial_state(chain) -> dict:
    return fl.build_model("logreg", chain.split.input_dim, chain.split.num_classes, seed=0).state_dict()


def open_round(chain, world: World, agreement_id: int) -> int:
    coordinator = make_coordinator(world)
    _, digest = coordinator.publish_model(initial_state(chain))
    return coordinator.open_round(agreement_id, digest, chain.w3.eth.get_block("latest")["timestamp"] + 3600)


def crash(forkserver, world: World, role: str, step: str, kill_at: str, **kwargs) -> None:
    """Runs `role`'s `step` in a child that must die by SIGKILL at `kill_at`."""
    child = forkserver.Process(target=crash_driver.run_step, args=(world, role, step, kwargs, kill_at))
    child.start()
    child.join(timeout=120)
    if child.exitcode is None:
        child.kill()
        child.join()
    assert child.exitcode == -signal.SIGKILL, f"{role}.{step} ended with {child.exitcode} before {kill_at}"


def logs(event, **filters) -> list:
    return event.get_logs(from_block=0, argument_filters=filters)


def trained(world: World, name: str) -> list[str]:
    path = world.folder / f"{name}-trained.log"
    return path.read_text().split() if path.exists() else []


def complete_round(chain, world: World, agreement_id: int, round_id: int, names: list[str]) -> None:
    """Closes the round (resuming whatever the coordinator left), claims every payout after the dispute window,
    and checks that everything happened exactly once."""
    d, events = chain.d, chain.d.ledger.events
    outcome = make_coordinator(world).close_round(agreement_id, round_id)
    assert sorted(outcome.report.accepted) == sorted(chain.partners[n].address for n in names)
    advance_time(chain.w3, 3600 + DISPUTE_WINDOW + 1)
    for name in names:
        partner = make_partner(world, name, agreement_id)
        amount = outcome.report.payouts[partner.address]
        paid_before = logs(d.vault.events.Claimed, agreementId=agreement_id, partner=partner.address) != []
        before = chain.token.functions.balanceOf(partner.address).call()
        partner.claim(agreement_id, round_id, amount, outcome.tree.proof(partner.address))
        # Paid once: by this claim, or (nothing more) by the one a dead process had sent.
        assert chain.token.functions.balanceOf(partner.address).call() - before == (0 if paid_before else amount)
        (claimed,) = logs(d.vault.events.Claimed, agreementId=agreement_id, partner=partner.address)
        assert claimed["args"]["amount"] == amount > 0
        # The accountant, as persisted, spent exactly this one round, and agrees with the chain.
        assert len(partner.accountant.history) == 1
        assert (
            partner.accountant.spent_fixed()
            == d.ledger.functions.cumulativeEpsilon(agreement_id, partner.address).call()
        )
    assert len(logs(events.RoundOpened, agreementId=agreement_id)) == 1
    assert len(logs(events.UpdateSubmitted, agreementId=agreement_id)) + sum(
        len(e["args"]["entries"]) // 6 for e in logs(events.BatchCommitted, agreementId=agreement_id)
    ) == len(names)
    (finalized,) = logs(events.RoundFinalized, agreementId=agreement_id)
    assert finalized["args"]["reportDigest"] == outcome.report_digest


# ---------------------------------------------------------------------- partner, single submissions

# Before and after each side effect: the envelope put (and the training before it), submitUpdate (signed, not
# sent; sent, receipt not seen), the accountant's write. Each transaction step alone: test_outbox.py.
PARTNER_POINTS = [
    "train:done",
    "envelope:enqueued",
    "accountant:recorded",
    "envelope:confirmed",
    "submit:signed",
    "submit:broadcast",
    "submit:confirmed",
]


@pytest.mark.parametrize("point", PARTNER_POINTS)
def test_partner_killed_at_each_step_commits_once(point, chain, world, forkserver):
    agreement_id = new_agreement(chain, ["alpha"])
    round_id = open_round(chain, world, agreement_id)
    args = {"agreement_id": agreement_id, "round_id": round_id, "recipient_addresses": recipients(chain)}
    crash(forkserver, world, "alpha", "run_round", point, **args)

    partner = make_partner(world, "alpha", agreement_id)
    envelope_key = partner._key("envelope", agreement_id, round_id)
    left = partner.outbox.find(envelope_key)
    assert (left is None) == (point == "train:done")
    submitted = logs(chain.d.ledger.events.UpdateSubmitted, agreementId=agreement_id)
    assert len(submitted) == (1 if point in ("submit:broadcast", "submit:confirmed") else 0)
    # Recorded by the dead process once its envelope was about to leave; before that, the restart records it.
    assert len(partner.accountant.history) == (0 if point in ("train:done", "envelope:enqueued") else 1)

    submission = partner.run_round(**args)
    (event,) = logs(chain.d.ledger.events.UpdateSubmitted, agreementId=agreement_id)
    assert event["args"]["envelopeDigest"] == submission.envelope_digest
    if left is None:
        # Died before its envelope was durable: trained again, and got the identical update.
        first, again = trained(world, "alpha")
        assert first == again
    else:
        # The envelope the dead process sealed is the one published and committed; nothing trained again.
        assert submission.envelope_cid == left.payload["cid"] and len(trained(world, "alpha")) == 1
        assert LocalStore(chain.store_dir, durable=False).has(left.payload["cid"])
    complete_round(chain, world, agreement_id, round_id, ["alpha"])


def test_each_round_trains_with_its_own_seed(world):
    partner = make_partner(world, "alpha", 1)
    seeds = {partner.round_seed(agreement, r) for agreement in (1, 2) for r in (1, 2, 3)}
    assert len(seeds) == 6  # fresh noise every round; and a rerun of a round draws the same (train:done above)
    assert partner.round_seed(1, 1) == make_partner(world, "alpha", 1).round_seed(1, 1)


def test_round_of_another_agreement_is_refused_before_anything_is_recorded(chain, world):
    partner = make_partner(world, "alpha", 1)
    with pytest.raises(ConfigurationError, match="accountant is for agreement 1, not 2"):
        partner.run_round(2, 1, recipients(chain))
    assert partner.outbox.operations() == [] and trained(world, "alpha") == []


# ---------------------------------------------------------------------- coordinator

OPEN_POINTS = ["model:confirmed", "open:signed", "open:broadcast", "open:confirmed"]


@pytest.mark.parametrize("point", OPEN_POINTS)
def test_coordinator_killed_while_opening_opens_one_round(point, chain, world, forkserver):
    agreement_id = new_agreement(chain, ["alpha"])
    crash(forkserver, world, "coordinator", "open", point, agreement_id=agreement_id, state=initial_state(chain))
    # Restarted, it runs its step 1 again: same model, a deadline from the chain's clock of now.
    round_id = open_round(chain, world, agreement_id)
    assert round_id == 1
    make_partner(world, "alpha", agreement_id).run_round(agreement_id, round_id, recipients(chain))
    complete_round(chain, world, agreement_id, round_id, ["alpha"])


CLOSE_POINTS = ["outcome:enqueued", "report:confirmed", "finalize:signed", "finalize:broadcast", "finalize:confirmed"]


@pytest.mark.parametrize("point", CLOSE_POINTS)
def test_coordinator_killed_while_closing_finalizes_its_recorded_outcome_once(point, chain, world, forkserver):
    agreement_id = new_agreement(chain, ["alpha"])
    round_id = open_round(chain, world, agreement_id)
    make_partner(world, "alpha", agreement_id).run_round(agreement_id, round_id, recipients(chain))
    crash(forkserver, world, "coordinator", "close_round", point, agreement_id=agreement_id, round_id=round_id)

    coordinator = make_coordinator(world)
    report_op = coordinator.outbox.get(coordinator._key("report", agreement_id, round_id))

    def must_not_recompute(*args):
        raise AssertionError("a restarted coordinator recomputed an outcome it had recorded")

    coordinator.compute_outcome = must_not_recompute
    outcome = coordinator.close_round(agreement_id, round_id)
    assert outcome.report.to_bytes() == put_data(coordinator.outbox, report_op)
    complete_round(chain, world, agreement_id, round_id, ["alpha"])


def test_a_close_resumed_with_an_outcome_computed_again_publishes_the_recorded_one(chain, world, forkserver):
    """The service computes a close's outcome before handing it to ``close_round`` (off its writer): resumed
    after a crash, the outcome it recorded is published and finalized, never the one computed again."""
    agreement_id = new_agreement(chain, ["alpha"])
    round_id = open_round(chain, world, agreement_id)
    make_partner(world, "alpha", agreement_id).run_round(agreement_id, round_id, recipients(chain))
    crash(
        forkserver,
        world,
        "coordinator",
        "close_round",
        "outcome:enqueued",
        agreement_id=agreement_id,
        round_id=round_id,
    )

    coordinator = make_coordinator(world)
    recorded = coordinator.outbox.get(coordinator._key("aggregate", agreement_id, round_id))
    aggregate, report, tree = coordinator.compute_outcome(agreement_id, round_id)
    other = {name: torch.zeros_like(tensor) for name, tensor in aggregate.items()}
    outcome = coordinator.close_round(agreement_id, round_id, computed=(other, report, tree))
    assert serialize_tensors(outcome.aggregate) == put_data(coordinator.outbox, recorded) != serialize_tensors(other)
    complete_round(chain, world, agreement_id, round_id, ["alpha"])  # finalized once, its payouts claimed once


# ---------------------------------------------------------------------- batched mode and claims


def test_batched_round_with_a_partner_and_the_coordinator_killed_anchors_once(chain, world, forkserver):
    agreement_id = new_agreement(chain, ["alpha", "beta"])
    round_id = open_round(chain, world, agreement_id)
    args = {"agreement_id": agreement_id, "round_id": round_id, "recipient_addresses": recipients(chain)}
    # Died once its envelope was recorded for release, before the accountant recorded the round.
    crash(forkserver, world, "alpha", "run_round_batched", "envelope:enqueued", **args)
    alpha = make_partner(world, "alpha", agreement_id)
    assert alpha.accountant.history == []
    alpha.reconcile(agreement_id)  # what every restarted round does first
    assert len(alpha.accountant.history) == 1
    signed = [alpha.run_round_batched(**args), make_partner(world, "beta", agreement_id).run_round_batched(**args)]
    assert len(make_partner(world, "alpha", agreement_id).accountant.history) == 1  # recorded once, persisted

    crash(
        forkserver,
        world,
        "coordinator",
        "anchor_batch",
        "batch:broadcast",
        agreement_id=agreement_id,
        round_id=round_id,
        signed=signed,
    )
    make_coordinator(world).anchor_batch(agreement_id, round_id, signed)
    assert len(logs(chain.d.ledger.events.BatchCommitted, agreementId=agreement_id)) == 1
    complete_round(chain, world, agreement_id, round_id, ["alpha", "beta"])


def test_partner_killed_while_claiming_is_paid_once(chain, world, forkserver):
    agreement_id = new_agreement(chain, ["alpha"])
    round_id = open_round(chain, world, agreement_id)
    make_partner(world, "alpha", agreement_id).run_round(agreement_id, round_id, recipients(chain))
    outcome = make_coordinator(world).close_round(agreement_id, round_id)
    advance_time(chain.w3, 3600 + DISPUTE_WINDOW + 1)
    address = chain.partners["alpha"].address
    amount = outcome.report.payouts[address]
    before = chain.token.functions.balanceOf(address).call()
    crash(
        forkserver,
        world,
        "alpha",
        "claim",
        "claim:broadcast",
        agreement_id=agreement_id,
        round_id=round_id,
        amount=amount,
        proof=outcome.tree.proof(address),
    )
    complete_round(chain, world, agreement_id, round_id, ["alpha"])  # claims again, as a restart would
    assert chain.token.functions.balanceOf(address).call() - before == amount


# ---------------------------------------------------------------------- the chain node


def kill_node_at(chain, point: str):
    """A checkpoint that SIGKILLs the node the first time `point` is reached (the process itself lives on)."""
    fired = []

    def checkpoint(name, op):
        if name == point and not fired:
            fired.append(name)
            chain.anvil.kill()

    return checkpoint


@pytest.mark.parametrize("point", ["submit:broadcast", "finalize:broadcast"])
def test_node_killed_between_broadcast_and_receipt_loses_nothing(point, chain, world):
    agreement_id = new_agreement(chain, ["alpha"])
    round_id = open_round(chain, world, agreement_id)
    args = {"agreement_id": agreement_id, "round_id": round_id, "recipient_addresses": recipients(chain)}
    if point == "finalize:broadcast":
        make_partner(world, "alpha", agreement_id).run_round(**args)
    chain.anvil.save_state()  # what the node has on disk when it dies: everything up to here
    height = chain.w3.eth.block_number
    if point == "submit:broadcast":
        actor, step = make_partner(world, "alpha", agreement_id, checkpoint=kill_node_at(chain, point)), "submit"
    else:
        actor, step = make_coordinator(world, checkpoint=kill_node_at(chain, point)), "finalize"

    def call():
        return actor.run_round(**args) if step == "submit" else actor.close_round(agreement_id, round_id)

    with pytest.raises((ChainError, OSError)):  # the node went away while the receipt was awaited
        call()
    sent = actor.outbox.get(actor._key(step, agreement_id, round_id))
    assert sent.status == "sent" and sent.tx_raw is not None

    chain.anvil.start()  # from its state file, on its port: the broadcast transaction's block is gone
    assert chain.w3.eth.block_number == height
    call()  # the restarted service resumes: the same signed bytes again, mined once
    assert Outbox(actor.outbox.path).get(sent.key).tx_hash == sent.tx_hash
    complete_round(chain, world, agreement_id, round_id, ["alpha"])


def test_accountant_file_records_each_operation_once_and_survives_a_reload(tmp_path):
    path = tmp_path / "accountant.json"
    accountant = fl.PrivacyAccountant(partner="0xA", agreement=1, delta=1e-5, epsilon_cap=8.0)
    book = AccountantFile(accountant, path)
    first = book.record_once("submit:1", (1.0, 0.1, 10))
    assert book.record_once("submit:1", (1.0, 0.1, 10)) == first and len(accountant.history) == 1
    reloaded = fl.PrivacyAccountant(partner="0xA", agreement=1, delta=1e-5, epsilon_cap=8.0)
    again = AccountantFile(reloaded, path)
    assert again.has("submit:1") and reloaded.history == accountant.history
    assert again.record_once("submit:1", (1.0, 0.1, 10)) == first
    other = fl.PrivacyAccountant(partner="0xB", agreement=1, delta=1e-5, epsilon_cap=8.0)
    with pytest.raises(ConfigurationError, match="partner"):
        AccountantFile(other, path)
    plain = tmp_path / "plain.json"  # a bare state_dict: which operations it holds is unknown, so it is refused
    plain.write_text(accountant.to_json())
    with pytest.raises(ConfigurationError, match="not an accountant file"):
        AccountantFile(fl.PrivacyAccountant(partner="0xA", agreement=1, delta=1e-5, epsilon_cap=8.0), plain)
