"""The ledger service walked through over HTTP only, on a folder `lepton-ledger demo` left.

Every party talks to a running ``lepton-ledger serve --workdir DEMO`` and to nothing else: no chain, no store.
What stays on a party's own machine is what would in real life: its key (the demo's development keys in
``DEMO/keys/dev-keys.json``, which sign messages, typed data and transactions here and never leave), its training
data and its training (``lepton_ledger.fl``, DP-SGD), and the sealing of its update (``lepton_ledger.envelope``).
The deployment file gives the chain id and contract addresses each party checks what it signs against.

1. the coordinator signs in (EIP-4361) and proposes a new agreement from a terms JSON (``POST /v1/agreements``);
2. each partner signs it (EIP-712 typed data, relayed by the coordinator) and stakes (``approve`` and ``stake``,
   each prepared by the service, signed by the partner, relayed);
3. the coordinator funds the pool and opens a round;
4. each partner fetches the round's model, trains with DP, seals its update to the coordinator and the auditor,
   uploads it (the client's store) and has its ``submitUpdate`` relayed;
5. the coordinator closes the round as a job and follows it; each partner claims its payout with the Merkle proof
   of ``GET /v1/rewards`` (after the dispute window, which the service's chain passes in real time);
6. the auditor runs the audit as a job and downloads its HTML report.

One line per step on stdout; on any refusal, one ``error: ...`` line on stderr and exit code 1. The service must
hold the coordinator's and the auditor's keys and sign in on the address it is reached at (the README's "Walk it
over HTTP" shows how it is started).

Usage: ``python examples/walkthrough.py http://127.0.0.1:8000 --workdir demo-out [--report audit.html]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data

from lepton_ledger import fl
from lepton_ledger.api.client import ServiceClient
from lepton_ledger.envelope import seal
from lepton_ledger.envelope.manifest import DPRecord
from lepton_ledger.envelope.tensors import deserialize_tensors
from lepton_ledger.errors import LeptonError
from lepton_ledger.protocol.addressing import cid_for_digest, digest_of_cid
from lepton_ledger.units import TOKEN

DATA = {"dataset": "digits", "seed": 0}  # the split partners train on and the coordinator evaluates on
POLL = 0.5  # seconds between two looks at a job, the service's block, or a claim waiting for its dispute window
ACTIVE = ("queued", "running")  # a job's states before it is done or failed


class Refused(Exception):
    """A step that cannot go on (what the service answered is not what the party expects)."""


def say(step: str, text: str) -> None:
    print(f"{step:<8} {text}", flush=True)


class Walk:
    """The parties of one demo folder, each with its own client of the service."""

    def __init__(self, url: str, folder: Path, stack: ExitStack, wait: float) -> None:
        document = json.loads((folder / "deployment.json").read_text())
        keys_file = folder / str(document.get("keys", "keys")) / "dev-keys.json"
        self.keys = json.loads(keys_file.read_text())["parties"]
        self.chain_id, self.contracts = int(document["chain_id"]), dict(document["contracts"])
        self.targets = {*self.contracts.values(), document["reward_token"]}  # what a party signs transactions to
        self.url, self.stack, self.wait = url, stack, wait
        self.clients: dict[str, ServiceClient] = {}

    def account(self, who: str) -> Any:
        return Account.from_key(self.keys[who]["ethereum_private_key"])

    def address(self, who: str) -> str:
        return str(self.account(who).address)

    def client(self, who: str) -> ServiceClient:
        """`who` signed in with its own key (once)."""
        if who not in self.clients:
            client = ServiceClient(self.url, self.account(who), chain_id=self.chain_id)
            self.clients[who] = self.stack.enter_context(client)
            client.sign_in()
            say("sign-in", f"{who} {client.account.address} signed in (EIP-4361)")
        return self.clients[who]

    def get(self, who: str, path: str) -> dict[str, Any]:
        return self.client(who).request("GET", path).json()

    def post(self, who: str, path: str, body: dict[str, Any], *, once: bool = False) -> dict[str, Any]:
        headers = {"Idempotency-Key": str(uuid.uuid4())} if once else {}
        return self.client(who).request("POST", path, json=body, headers=headers).json()

    def send(self, who: str, contract: str, function: str, args: list[Any]) -> str:
        """`contract.function(*args)` from `who`: prepared by the service, checked and signed here, relayed."""
        client = self.client(who)
        unsigned = client.prepare(contract, function, args)
        if unsigned.get("chainId") != self.chain_id or unsigned.get("to") not in self.targets:
            raise Refused(f"the service prepared {contract}.{function} for another chain or contract: not signed")
        unsigned.pop("from", None)
        answer = client.relay(client.account.sign_transaction(unsigned).raw_transaction)
        if answer.get("status") != 1:
            raise Refused(f"{contract}.{function} from {who} failed on-chain ({answer.get('tx_hash')})")
        self.until(
            who, f"the service sees block {answer['block_number']}", lambda: self.sees(who, answer["block_number"])
        )
        return str(answer["tx_hash"])

    def sees(self, who: str, block: int) -> bool:
        """Whether the service's reads (refreshed once per block) are at `block` or later."""
        return int(self.get(who, "/v1/health")["block"]) >= int(block)

    def until(self, who: str, what: str, done: Any) -> None:
        """Polls `done()` until it holds; Refused when it outlasts the wait."""
        deadline = time.monotonic() + self.wait
        while not done():
            if time.monotonic() > deadline:
                raise Refused(f"{who} waited {self.wait:g} s for {what}")
            time.sleep(POLL)

    def follow(self, who: str, job: dict[str, Any]) -> dict[str, Any]:
        """The job once it is done; Refused when it failed or outlasts the wait."""
        path = f"/v1/jobs/{job['id']}"
        self.until(who, f"job {job['id']} ({job['kind']})", lambda: self.get(who, path)["status"] not in ACTIVE)
        job = self.get(who, path)
        if job["status"] != "done":
            raise Refused(f"job {job['id']} ({job['kind']}) failed: {job['error']}")
        return job


def artifact(client: ServiceClient, digest: str) -> bytes:
    """The artifact an on-chain digest names, from the service (checked against its CID by the client's store,
    whose reads name no round)."""
    return client.store(0, 0).get(cid_for_digest(bytes.fromhex(digest.removeprefix("0x"))))


def propose(walk: Walk, parties: list[str], args: argparse.Namespace) -> int:
    terms = {
        "parties": [walk.address(p) for p in parties],
        "reward_per_round": args.reward,
        "required_stake": args.stake,
        "epsilon_cap": 10.0,
        "rounds": 1,
        "days": 30,
        "payout_rule": "by_sample_count",
        "coordinator_bond": "0",  # no bond to post: the service has no route for it yet (docs/api.md)
        "arbiter": walk.address("admin"),
        "document": {"task": "digits, walked over HTTP", "model": "logreg"},
    }
    proposed = walk.post("coordinator", "/v1/agreements", terms, once=True)
    agreement = int(proposed["agreement_id"])
    say(
        "propose",
        f"agreement {agreement} between {', '.join(parties)}: {args.reward} LRW a round, stake {args.stake} LRW "
        f"(terms document {proposed['terms_cid']})",
    )
    return agreement


def join(walk: Walk, who: str, agreement: int) -> None:
    """`who` reads the terms, signs the agreement by typed data (relayed) and stakes."""
    client = walk.client(who)
    terms = walk.get(who, f"/v1/agreements/{agreement}")
    document = json.loads(artifact(client, terms["terms_digest"]))  # what the party signs
    prepared = walk.post(who, f"/v1/agreements/{agreement}/signatures/prepare", {})
    typed = prepared["typed_data"]
    domain, message = typed["domain"], typed["message"]
    if (
        int(domain["chainId"]) != walk.chain_id
        or domain["verifyingContract"] != walk.contracts["AgreementRegistry"]
        or int(message["agreementId"]) != agreement
        or message["party"] != client.account.address
    ):
        raise Refused(f"the typed data the service gave {who} is not its signature of agreement {agreement}")
    signature = client.account.sign_message(encode_typed_data(full_message=typed)).signature.to_0x_hex()
    body = {"deadline": prepared["deadline"], "signature": signature}
    relayed = walk.post(who, f"/v1/agreements/{agreement}/signatures", body, once=True)
    say(
        "sign",
        f"{who} signed agreement {agreement} ({document['task']}), relayed by the coordinator: {relayed['tx_hash']}",
    )
    stake = int(terms["required_stake"])
    walk.send(who, "RewardToken", "approve", [walk.contracts["RewardVault"], stake])
    walk.send(who, "RewardVault", "stake", [agreement, stake])
    status = walk.get(who, f"/v1/agreements/{agreement}")["status"]
    say("stake", f"{who} staked {stake / TOKEN:g} LRW (approve and stake, signed by {who}, relayed): {status}")


def train_and_upload(walk: Walk, who: str, index: int, n: int, agreement: int, round_id: int) -> None:
    """`who`'s update: the round's model from the service, trained here with DP on its own partition, sealed to
    the coordinator and the auditor, uploaded, its commitment relayed."""
    client = walk.client(who)
    store = client.store(agreement, round_id)
    terms = walk.get(who, f"/v1/agreements/{agreement}")
    base = walk.get(who, f"/v1/agreements/{agreement}/rounds/{round_id}")["model_digest"]
    document = json.loads(artifact(client, terms["terms_digest"]))
    data = fl.make_federated(DATA["dataset"], num_partners=n, seed=DATA["seed"], eval_fraction=0.2).partners[index]
    model = fl.build_model(document["model"], data.input_dim, data.num_classes, seed=0)
    model.load_state_dict(deserialize_tensors(artifact(client, base)))
    result = fl.train_local(
        model=model, data=data, epochs=1, batch_size=64, noise_multiplier=1.0, delta=terms["delta"], seed=index
    )
    assert result.dp is not None  # trained with noise
    accountant = fl.PrivacyAccountant(
        partner=client.account.address, agreement=agreement, delta=terms["delta"], epsilon_cap=terms["epsilon_cap"]
    )
    recipients = [terms["coordinator"], walk.address("auditor")]
    sealed = seal(
        result.delta,
        signer_key=bytes(client.account.key),
        recipients=[bytes.fromhex(walk.get(who, f"/v1/partners/{r}/key")["encryption_key"][2:]) for r in recipients],
        chain_id=walk.chain_id,
        ledger=walk.contracts["RoundLedger"],
        agreement_id=agreement,
        round=round_id,
        base_model_digest=bytes.fromhex(base[2:]),
        dp=DPRecord.from_params(result.dp),
        cumulative_epsilon=accountant.would_spend(result.dp.as_round()),
        sample_count=result.sample_count,
        metrics=result.metrics,
    )
    cid = store.put(sealed.data)
    m = sealed.manifest
    commitment = [agreement, round_id, digest_of_cid(cid), sealed.manifest_digest, m.cumulative_epsilon, m.sample_count]
    tx_hash = walk.send(
        who, "RoundLedger", "submitUpdate", ["0x" + v.hex() if isinstance(v, bytes) else v for v in commitment]
    )
    say(
        "update",
        f"{who} trained on {m.sample_count} samples (DP-SGD, epsilon {m.cumulative_epsilon_float:.3f}), "
        f"uploaded {cid}, submitUpdate relayed: {tx_hash}",
    )


def claim(walk: Walk, who: str, agreement: int, round_id: int) -> None:
    """`who`'s payout, with the proof the rewards route re-builds; waits out the dispute window."""
    reward = walk.get(who, f"/v1/rewards/{agreement}/{round_id}/{walk.address(who)}")
    args = [agreement, round_id, int(reward["amount"]), reward["proof"]]
    deadline, told = time.monotonic() + walk.wait, False
    while True:
        try:
            tx_hash = walk.send(who, "RewardVault", "claim", args)
            break
        except LeptonError as exc:  # ServiceError: 409 with the vault's error while the window is open
            if getattr(exc, "code", "") != "RewardVaultClaimNotOpen" or time.monotonic() > deadline:
                raise
            if not told:
                say("wait", f"claims of round {round_id} open at chain time {reward['claimable_at']}: waiting")
                told = True
            time.sleep(POLL)  # the service's chain passes the dispute window in real time
    say(
        "claim", f"{who} claimed {int(reward['amount']) / TOKEN:.4f} LRW ({len(reward['proof'])}-hash proof): {tx_hash}"
    )


def walk_through(walk: Walk, parties: list[str], args: argparse.Namespace) -> None:
    health = walk.client("coordinator").request("GET", "/v1/health").json()
    say("service", f"{walk.url}: chain {health['chain_id']}, block {health['block']}")
    agreement = propose(walk, parties, args)
    for who in parties:
        join(walk, who, agreement)
    funded = walk.post("coordinator", f"/v1/agreements/{agreement}/fund", {"amount": args.fund}, once=True)
    say("fund", f"coordinator funded the pool with {int(funded['amount']) / TOKEN:g} LRW: {funded['tx_hash']}")
    n = len(parties)
    opened = walk.post(
        "coordinator", f"/v1/agreements/{agreement}/rounds", {**DATA, "partitions": n, "round_seconds": 3600}, once=True
    )
    round_id = int(opened["round"])
    say("open", f"round {round_id} of agreement {agreement} opened on model {opened['model_cid']}")
    for index, who in enumerate(parties):
        train_and_upload(walk, who, index, n, agreement, round_id)
    close = walk.post("coordinator", f"/v1/agreements/{agreement}/rounds/{round_id}/close", {**DATA, "partitions": n})
    say("close", f"close job {close['id']} queued")
    result = walk.follow("coordinator", close)["result"]
    path = f"/v1/agreements/{agreement}/rounds/{round_id}"
    walk.until(
        "coordinator", f"round {round_id} finalized", lambda: walk.get("coordinator", path)["status"] == "finalized"
    )
    say("close", f"round {round_id} finalized: {len(result['accepted'])} accepted, report {result['report_cid']}")
    for who in parties:
        claim(walk, who, agreement, round_id)
    audit = walk.follow("auditor", walk.post("auditor", "/v1/audit", {}))["result"]
    say("audit", f"{audit['checks']} checks at block {audit['block']}, {audit['failed']} failed")
    report = walk.client("auditor").request("GET", "/v1/audit/report").text
    Path(args.report).write_text(report)
    say("report", f"the audit's HTML report, {len(report)} characters: {args.report}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("service", help="the service's URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--workdir", type=Path, default=Path("demo-out"), help="the demo folder the service serves")
    parser.add_argument("--parties", default="partner1,partner2", help="the demo's partners who join (comma-separated)")
    parser.add_argument("--reward", default="10", help="reward per round, whole tokens")
    parser.add_argument("--stake", default="1", help="stake each party posts, whole tokens")
    parser.add_argument("--fund", default="10", help="what the coordinator funds the pool with, whole tokens")
    parser.add_argument("--report", default="audit-report.html", help="where the audit's HTML report goes")
    parser.add_argument("--wait", type=float, default=900.0, help="seconds a job or a claim may take at most")
    args = parser.parse_args(argv)
    try:
        with ExitStack() as stack:
            walk = Walk(args.service, args.workdir, stack, args.wait)
            walk_through(walk, [p.strip() for p in args.parties.split(",") if p.strip()], args)
    except (LeptonError, Refused, OSError, ValueError, KeyError, TypeError) as exc:
        line = f"{type(exc).__name__}: {exc}" if isinstance(exc, KeyError) else str(exc)
        print(f"error: {' '.join(line.split())}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
