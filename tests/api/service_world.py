"""What the service tests run against, built with the library on a real local node: the system deployed with a
token, the coordinator, an auditor and two partners registered (partners approved), agreement 1 between the two
partners, funded, with round 1 finished (trained with DP, closed, paid by sample count), and an outsider who is
registered but party to nothing. The chain is advanced past the round's dispute window."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agreement_setup import (  # tests/rounds/ (on the path: conftest.py)
    DISPUTE_WINDOW,
    funded_agreement,
)
from eth_account import Account
from eth_account.messages import encode_defunct
from web3 import HTTPProvider, Web3

from lepton_ledger import fl
from lepton_ledger.api.client import ServiceClient
from lepton_ledger.chain import agreements
from lepton_ledger.chain.anvil import advance_time, dev_account
from lepton_ledger.chain.artifacts import load_artifact
from lepton_ledger.chain.deployment import DevRoles, deploy_with_roles
from lepton_ledger.chain.events import EventIndex
from lepton_ledger.chain.transactions import Transactor
from lepton_ledger.envelope import generate_x25519_keypair
from lepton_ledger.keys import Keystore
from lepton_ledger.rounds.coordinator import Coordinator
from lepton_ledger.rounds.coordinator_steps import eval_set_spec
from lepton_ledger.rounds.outbox import Outbox
from lepton_ledger.rounds.partner import Partner, TrainingSettings
from lepton_ledger.rounds.rules import RoundRules
from lepton_ledger.storage.local import LocalStore
from lepton_ledger.units import TOKEN
from lepton_ledger.workers.inline import InlineExecutor

PASSWORD = "service tests"
SPLIT = {"name": "digits", "num_partners": 2, "seed": 0}
CLOSE = {"dataset": SPLIT["name"], "partitions": SPLIT["num_partners"], "seed": SPLIT["seed"]}  # a close job's data


@dataclass
class World:
    data_dir: Path
    w3: Any
    tx: Any
    d: Any
    token: Any
    roles: Any
    alpha: Any
    beta: Any
    outsider: Any
    agreement_id: int
    round_id: int
    payouts: dict[str, int]
    store: Any
    keys: dict[str, bytes] = field(default_factory=dict)
    open_round: int = 0
    open_digest: bytes = b""
    split: Any = None
    api: Any = None
    server: Any = None

    def attach(self, client: Any) -> None:
        self.api = client

    # -- sign-in ---------------------------------------------------------------------------------------------

    def nonce(self, account: Any) -> dict[str, Any]:
        reply = self.api.post("/v1/auth/nonce", json={"address": account.address})
        assert reply.status_code == 200, reply.text
        return reply.json()

    def login(self, message: str, account: Any) -> Any:
        signature = account.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
        return self.api.post("/v1/auth/login", json={"message": message, "signature": signature})

    def token_of(self, account: Any) -> str:
        reply = self.login(self.nonce(account)["message"], account)
        assert reply.status_code == 200, reply.text
        return reply.json()["token"]

    def headers(self, account: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token_of(account)}"}

    def wait_block(self, block: int, timeout: float = 30.0) -> None:
        """Until the service's read model has seen `block` (it refreshes per block)."""
        deadline = time.monotonic() + timeout
        while self.api.get("/v1/health").json()["block"] < block:
            assert time.monotonic() < deadline, f"the service never saw block {block}"

    def coordinator_nonce(self) -> int:
        return self.w3.eth.get_transaction_count(self.roles.coordinator.address)


def build_world(data_dir: Path, url: str) -> World:
    w3 = Web3(HTTPProvider(url))
    roles = DevRoles.from_dev_keys()
    alpha, beta, outsider = dev_account(3), dev_account(4), dev_account(5)
    tx = Transactor(w3, [*roles.accounts(), alpha, beta, outsider])
    d = deploy_with_roles(tx, roles, dispute_window=DISPUTE_WINDOW)
    token = tx.deploy(
        load_artifact("LeptonToken"), "Lepton Reward", "LRW", roles.admin.address, sender=roles.admin.address
    )
    d.write(
        data_dir / "deployment.json",
        rpc_url=url,
        chain_id=w3.eth.chain_id,
        extra={
            "reward_token": token.address,
            "coordinator": roles.coordinator.address,
            "auditors": [roles.auditor.address],
            "dispute_window": DISPUTE_WINDOW,
            "eval_set": eval_set_spec(SPLIT["name"], SPLIT["seed"]),
            "model": "logreg",
        },
    )
    keys = {}
    for name, account in (
        ("coordinator", roles.coordinator),
        ("auditor", roles.auditor),
        ("alpha", alpha),
        ("beta", beta),
        ("outsider", outsider),
    ):
        private, public = generate_x25519_keypair()
        keys[name] = private
        agreements.register(tx, d, account.address, {"name": name}, public)
    for account in (alpha, beta, outsider):
        tx.transact(d.partners.functions.approve(account.address), roles.coordinator.address)

    store = LocalStore(data_dir / "blocks")
    agreement_id = funded_agreement(tx, d, token, roles, [alpha, beta], store=store)
    tx.transact(token.functions.mint(roles.coordinator.address, 10 * 300 * TOKEN), roles.admin.address)

    split = fl.make_federated(**SPLIT, alpha=None, eval_fraction=0.2)  # as `coordinator close` splits it
    coordinator = make_coordinator(
        roles, tx, d, store, keys, split, data_dir / "coordinator-outbox.sqlite", data_dir / "events.sqlite"
    )
    model = fl.build_model("logreg", split.input_dim, split.num_classes, seed=0)
    _, digest = coordinator.publish_model(model.state_dict())
    round_id = coordinator.open_round(agreement_id, digest, w3.eth.get_block("latest")["timestamp"] + 3600)
    commit_updates(tx, d, store, roles, [alpha, beta], split, agreement_id, round_id, data_dir)
    outcome = coordinator.close_round(agreement_id, round_id)
    advance_time(w3, 3600 + DISPUTE_WINDOW + 1)
    # Round 2 stays open, from round 1's aggregate, for the envelope tests.
    _, open_digest = coordinator.publish_model(outcome.aggregate)
    coordinator.open_round(agreement_id, open_digest, w3.eth.get_block("latest")["timestamp"] + 86400)
    # The service opens envelopes with the coordinator's key from its keystore, and audits with the auditor's.
    keystore = Keystore(data_dir / "keystore", scrypt_n=2**4)
    for name, account in (("coordinator", roles.coordinator), ("auditor", roles.auditor)):
        keystore.import_key(name, account.key, PASSWORD, x25519_private_key=keys[name])
    return World(
        data_dir=data_dir,
        w3=w3,
        tx=tx,
        d=d,
        token=token,
        roles=roles,
        alpha=alpha,
        beta=beta,
        outsider=outsider,
        agreement_id=agreement_id,
        round_id=round_id,
        payouts=dict(outcome.report.payouts),
        store=store,
        keys=keys,
        open_round=round_id + 1,
        open_digest=open_digest,
        split=split,
    )


def fresh_account() -> Any:
    return Account.create()


def make_coordinator(roles, tx, d, store, keys, split, outbox: Path, events: Path) -> Coordinator:
    return Coordinator(
        account=roles.coordinator,
        tx=tx,
        deployment=d,
        store=store,
        x25519_private=keys["coordinator"],
        events_path=events,
        eval_set=split.eval_set,
        model_name="logreg",
        rules=RoundRules(max_norm=50.0),
        payout_rule=fl.PayoutRule.BY_SAMPLE_COUNT,
        outbox=Outbox(outbox),
    )


def commit_updates(tx, d, store, roles, accounts, split, agreement_id: int, round_id: int, folder: Path) -> None:
    """Each of `accounts` (fresh to `agreement_id`) trains with DP and commits its update to the round."""
    executor = InlineExecutor()
    for i, account in enumerate(accounts):
        accountant = fl.PrivacyAccountant(partner=account.address, agreement=agreement_id, delta=1e-5, epsilon_cap=8.0)
        partner = Partner(
            account=account,
            tx=tx,
            deployment=d,
            store=store,
            accountant=accountant,
            data=split.partners[i],
            executor=executor,
            settings=TrainingSettings(model="logreg", epochs=1, batch_size=64, noise_multiplier=1.0),
            outbox=Outbox(folder / f"partner-{agreement_id}-{i}-outbox.sqlite"),
        )
        partner.run_round(agreement_id, round_id, [roles.coordinator.address, roles.auditor.address])


def lone_partner_agreement(world: World, name: str) -> tuple[Any, int, Coordinator]:
    """A fresh partner `name` (funded, registered, approved) and a new funded agreement of its own; the partner,
    the agreement and a coordinator for it (its outbox and events in ``<data dir>/<name>-<agreement>``)."""
    from lepton_ledger.chain import node

    account = fresh_account()
    node.fund(world.w3, account.address, 10**19)
    world.tx.add(account)
    agreements.register(world.tx, world.d, account.address, {"name": name}, generate_x25519_keypair()[1])
    world.tx.transact(world.d.partners.functions.approve(account.address), world.roles.coordinator.address)
    agreement_id = funded_agreement(world.tx, world.d, world.token, world.roles, [account], store=world.store)
    folder = world.data_dir / f"{name}-{agreement_id}"
    folder.mkdir()
    coordinator = make_coordinator(
        world.roles,
        world.tx,
        world.d,
        world.store,
        world.keys,
        world.split,
        folder / "outbox.sqlite",
        folder / "events.sqlite",
    )
    return account, agreement_id, coordinator


def open_round(
    world: World, folder: Path, seconds: int = 3600, partners: list | None = None, agreement_id: int | None = None
) -> tuple[int, int]:
    """A new funded agreement between `partners` (default alpha and beta), or the active `agreement_id`, its round 1
    open on a fresh model for `seconds` (the coordinator's outbox and events in `folder`)."""
    if agreement_id is None:
        partners = partners or [world.alpha, world.beta]
        agreement_id = funded_agreement(world.tx, world.d, world.token, world.roles, partners, store=world.store)
    folder.mkdir(exist_ok=True)
    coordinator = make_coordinator(
        world.roles,
        world.tx,
        world.d,
        world.store,
        world.keys,
        world.split,
        folder / "outbox.sqlite",
        folder / "events.sqlite",
    )
    model = fl.build_model("logreg", world.split.input_dim, world.split.num_classes, seed=0)
    _, digest = coordinator.publish_model(model.state_dict())
    round_id = coordinator.open_round(agreement_id, digest, world.w3.eth.get_block("latest")["timestamp"] + seconds)
    return agreement_id, round_id


def round_with_commitments(world: World) -> tuple[int, int]:
    """A new agreement between alpha and beta whose round 1 is open with both partners' updates committed."""
    folder = world.data_dir / f"agreement-{world.d.agreements.functions.agreementCount().call() + 1}"
    agreement_id, round_id = open_round(world, folder)
    commit_updates(
        world.tx,
        world.d,
        world.store,
        world.roles,
        [world.alpha, world.beta],
        world.split,
        agreement_id,
        round_id,
        folder,
    )
    return agreement_id, round_id


def client_partner(service, client, account, index: int, agreement_id: int, round_id: int, folder) -> Partner:
    """`account`'s round code on its own machine: its outbox and accountant there, the store and relay the
    service's (through `client`)."""
    return Partner(
        account=account,
        tx=client.transactor(service.w3),
        deployment=service.d,
        store=client.store(agreement_id, round_id),
        accountant=fl.PrivacyAccountant(partner=account.address, agreement=agreement_id, delta=1e-5, epsilon_cap=8.0),
        data=service.split.partners[index],
        executor=InlineExecutor(),
        settings=TrainingSettings(model="logreg", epochs=1, batch_size=64, noise_multiplier=1.0),
        outbox=Outbox(folder / f"{account.address}-{agreement_id}.sqlite"),
    )


def commit_through_client(service, account, index: int, agreement_id: int, round_id: int, folder) -> dict:
    """`account` trains, uploads and commits its update to the round through the client; the service's answer."""
    recipients = [service.roles.coordinator.address, service.roles.auditor.address]
    with ServiceClient(str(service.api.base_url), account, chain_id=service.w3.eth.chain_id) as client:
        signed = client_partner(service, client, account, index, agreement_id, round_id, folder).run_round_batched(
            agreement_id, round_id, recipients
        )
        return client.submit_commitment(signed, chain_id=service.w3.eth.chain_id, ledger=service.d.ledger.address)


def follow_job(world: World, job_id: int, headers: dict[str, str], timeout: float = 180.0) -> dict[str, Any]:
    """The job once it is done or failed."""
    deadline = time.monotonic() + timeout
    while True:
        job = world.api.get(f"/v1/jobs/{job_id}", headers=headers).json()
        if job["status"] in ("done", "failed"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.2)  # polling a job's status, as any client does


def audit_state_held(service) -> sqlite3.Connection:
    """A connection holding the audit's state file exclusively: an audit that opens it waits (its busy timeout,
    30 s) until the connection closes."""
    path = service.data_dir / "audit" / "state.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    held = sqlite3.connect(path, isolation_level=None)
    held.execute("PRAGMA locking_mode=EXCLUSIVE")  # readers too are kept out, WAL or not
    held.execute("BEGIN EXCLUSIVE")
    return held


def events_held(service) -> sqlite3.Connection:
    """A connection holding the write lock of the service coordinator's event index: a close, whose computation
    syncs it, waits there (its busy timeout, 30 s) until the connection closes; readers of the index go on."""
    path = service.data_dir / "events" / service.d.ledger.address / "events.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    EventIndex(service.w3, {}, path)  # the index's file and tables, as the service opens them
    held = sqlite3.connect(path, isolation_level=None)
    held.execute("BEGIN IMMEDIATE")
    return held
