"""The agreement the round tests start from: active (every partner signed and staked) and funded for one round."""

from __future__ import annotations

from typing import Any

from lepton_ledger import fl
from lepton_ledger.chain import agreements
from lepton_ledger.rounds.coordinator import Coordinator
from lepton_ledger.rounds.outbox import Outbox
from lepton_ledger.rounds.partner import Partner, TrainingSettings
from lepton_ledger.rounds.roles import publish_document
from lepton_ledger.rounds.rules import RoundRules
from lepton_ledger.rounds.world import World
from lepton_ledger.units import TOKEN

DISPUTE_WINDOW = 600
NAMES = ("alpha", "beta", "gamma")


def funded_agreement(
    tx: Any,
    d: Any,
    token: Any,
    roles: Any,
    partners: list[Any],
    *,
    store: Any,
    relay_every_second: bool = False,
    document: dict[str, Any] | None = None,
) -> int:
    """A fresh agreement between `partners` (by-sample-count payouts, epsilon cap 8, 5 rounds, the terms
    `document`, put to `store`: a coordinator closes only by the rules of a document it can produce), signed
    (every second partner by a relayed EIP-712 signature when asked), staked and funded for one round; its id."""
    document = document or {"task": "digits classification"}
    publish_document(store, document)
    terms = agreement_terms(tx, token, roles, [a.address for a in partners], document)
    agreement_id = agreements.propose(tx, d, roles.coordinator.address, terms)
    world = World(tx, d, token, roles, {a.address: a for a in partners}, {})
    world.join_and_fund(agreement_id, terms, relayed=lambda i: relay_every_second and i % 2 == 1)
    return agreement_id


def agreement_terms(tx: Any, token: Any, roles: Any, parties: list[str], document: dict[str, Any]) -> Any:
    """The test agreements' terms between `parties` (by-sample-count payouts, epsilon cap 8, 5 rounds, 30 days
    from now, stake 100 and reward 300 tokens a round), their terms document `document`."""
    now = tx.w3.eth.get_block("latest")["timestamp"]
    return agreements.AgreementTerms(
        parties=parties,
        reward_token=token.address,
        reward_per_round=300 * TOKEN,
        epsilon_cap=8.0,
        delta=1e-5,
        required_stake=100 * TOKEN,
        start=now - 1,
        end=now + 30 * 86400,
        max_rounds=5,
        coordinator=roles.coordinator.address,
        arbiter=roles.admin.address,
        max_sample_count=100_000,
        payout_rule=fl.PayoutRule.BY_SAMPLE_COUNT,
        document=document,
    )


def new_agreement(world, rules: RoundRules | None = None) -> int:
    """A fresh active, funded agreement between the three partners (one signs by transaction, the next by relayed
    EIP-712 signature); with `rules`, its terms document (put to the store) signs them."""
    document = None
    if rules is not None:
        document = {"task": "digits classification", "rules": rules.report_fields()}
    return funded_agreement(
        world["tx"],
        world["d"],
        world["token"],
        world["roles"],
        list(world["accounts"].values()),
        store=world["store"],
        relay_every_second=True,
        document=document,
    )


def make_coordinator(world, name: str, *, model: str = "logreg", **options) -> Coordinator:
    folder = world["tmp"].mktemp(name)
    return Coordinator(
        account=world["roles"].coordinator,
        tx=world["tx"],
        deployment=world["d"],
        store=world["store"],
        x25519_private=world["keys"]["coordinator"],
        events_path=folder / "events.sqlite",
        eval_set=world["split"].eval_set,
        model_name=model,
        rules=options.pop("rules", RoundRules(max_norm=50.0)),
        payout_rule=fl.PayoutRule.BY_SAMPLE_COUNT,
        outbox=Outbox(folder / "outbox.sqlite"),
        **options,
    )


def make_partner(
    world, name: str, agreement_id: int, executor, *, cls=Partner, cap: float = 8.0, model: str = "logreg"
) -> Partner:
    account = world["accounts"][name]
    accountant = fl.PrivacyAccountant(partner=account.address, agreement=agreement_id, delta=1e-5, epsilon_cap=cap)
    return cls(
        account=account,
        tx=world["tx"],
        deployment=world["d"],
        store=world["store"],
        accountant=accountant,
        data=world["split"].partners[NAMES.index(name)],
        executor=executor,
        settings=TrainingSettings(model=model, epochs=1, batch_size=64, noise_multiplier=1.0),
        outbox=Outbox(world["tmp"].mktemp(f"{name}-{agreement_id}") / "outbox.sqlite"),
    )


def open_round(world, coordinator: Coordinator, agreement_id: int) -> tuple[int, str]:
    split = world["split"]
    model = fl.build_model(coordinator.model_name, split.input_dim, split.num_classes, seed=0)
    cid, digest = coordinator.publish_model(model.state_dict())
    deadline = world["w3"].eth.get_block("latest")["timestamp"] + 3600
    return coordinator.open_round(agreement_id, digest, deadline), cid


def recipients(world) -> list[str]:
    return [world["roles"].coordinator.address, world["roles"].auditor.address]
