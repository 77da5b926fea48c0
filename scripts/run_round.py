"""`brownie run run_round`: one federated round of the agreement scripts/sign_agreement.py set up. The coordinator
publishes the global model (the last finalized aggregate, else a fresh one) and opens the round; each partner
trains with DP-SGD in a local worker process, seals its update to the coordinator and the auditors and submits
it; the coordinator opens, validates, aggregates, scores, pays and finalizes. Prints accuracy, each partner's
epsilon and payout. Thin: the parties come from `lepton_ledger.rounds.roles`, the round is
`lepton_ledger.rounds.driver.drive_round`.

Reads deployment.json and agreement.json (same folder, by default brownie-out/); keeps the partners' privacy
accountants in accountants/ and the coordinator's event index in events.sqlite there.
"""

import json
from pathlib import Path

from brownie import web3

from lepton_ledger.chain.anvil import dev_account
from lepton_ledger.chain.state import Terms
from lepton_ledger.chain.transactions import Transactor
from lepton_ledger.commands.context import bind_deployment
from lepton_ledger.fl.data import make_federated
from lepton_ledger.rounds.accountant_file import accountant_path
from lepton_ledger.rounds.driver import drive_round
from lepton_ledger.rounds.outbox import Outbox
from lepton_ledger.rounds.roles import (
    build_coordinator,
    build_partner,
    fresh_accountant,
    global_model,
    terms_document,
)
from lepton_ledger.rounds.rules import RoundRules
from lepton_ledger.storage.local import LocalStore
from lepton_ledger.units import TOKEN
from lepton_ledger.workers import open_executor
from scripts.deploy import OUT, require_local_network

ROUND_SECONDS = 3600


def main(deployment: str = OUT):
    active = require_local_network()
    path = Path(deployment)
    folder = path.parent
    document = json.loads(path.read_text())
    setup = json.loads((folder / "agreement.json").read_text())
    agreement_id, parties = setup["agreement_id"], setup["parties"]
    accounts = {name: dev_account(p["account_index"]) for name, p in parties.items()}
    coordinator_account = accounts["coordinator"]
    tx = Transactor(web3, accounts.values())
    d = bind_deployment(web3, document, path)
    store = LocalStore(setup["store"])
    data = setup["data"]
    split = make_federated(data["dataset"], num_partners=data["partitions"], seed=data["seed"])
    terms = Terms.read(d.agreements.functions.terms(agreement_id))
    signed = terms_document(store, terms) or {}
    model_name = signed.get("model", "logreg")
    print(
        f"network {active} (chain {web3.eth.chain_id}); sending: openRound from the coordinator, submitUpdate "
        f"from each of {len(setup['partners'])} partners, finalizeRound from the coordinator"
    )

    coordinator = build_coordinator(
        account=coordinator_account,
        tx=tx,
        deployment=d,
        store=store,
        x25519_private=bytes.fromhex(parties["coordinator"]["x25519_private_key"]),
        events_path=folder / "events.sqlite",
        eval_set=split.eval_set,
        model_name=model_name,
        rules=RoundRules.from_terms(signed, len(setup["partners"])),
        payout_rule=terms.payout_rule,
        outbox=Outbox(folder / "outbox" / "coordinator.sqlite"),
    )
    state, previous = global_model(
        d, store, agreement_id, model_name=model_name, input_dim=split.input_dim, num_classes=split.num_classes
    )
    recipients = [document["coordinator"], *document["auditors"]]
    partners = {}
    with open_executor(in_process=True) as executor:  # Ray when $LEPTON_RAY_ADDRESS is set
        for i, name in enumerate(setup["partners"]):
            account = accounts[name]
            partners[account.address] = build_partner(
                account=account,
                tx=tx,
                deployment=d,
                store=store,
                data=split.partners[i],
                executor=executor,
                accountant=fresh_accountant(d, agreement_id, account.address),
                accountant_path=accountant_path(
                    folder / "accountants", tx.w3, d.ledger.address, agreement_id, account.address
                ),
                outbox=Outbox(folder / "outbox" / f"{name}.sqlite"),
            )
        names = {address: name for name, address in zip(setup["partners"], partners)}

        def tell(event, detail):
            if event == "opened":
                print(
                    f"round {detail['round']} opened on {detail['model_cid']} "
                    f"({f'aggregate of round {previous}' if previous else 'fresh model'})"
                )
            elif event == "committed":
                partner = detail["partner"]
                print(
                    f"{names[partner.address]} submitted {detail['result'].envelope_cid}: epsilon "
                    f"{partner.accountant.epsilon():.4f} of cap {terms.epsilon_cap:g}"
                )

        # one partner after another: the in-process executor trains one task at a time
        outcome = drive_round(
            coordinator,
            list(partners.values()),
            agreement_id,
            state,
            recipients=recipients,
            window=ROUND_SECONDS,
            concurrent=False,
            on_event=tell,
        ).outcome
    report = outcome.report
    print(
        f"round {outcome.report.round} finalized: accuracy {report.metrics['accuracy_before']:.3f} -> "
        f"{report.metrics['accuracy_after']:.3f}; report {outcome.report_cid}"
    )
    for address, partner in partners.items():
        print(
            f"{names[address]}: epsilon {partner.accountant.epsilon():.4f}, "
            f"payout {report.payouts.get(address, 0) / TOKEN:.2f} LRW"
        )
    return outcome
