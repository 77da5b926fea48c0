"""The brownie scripts run on the test chain and leave a working deployment."""

import json

from brownie import PartnerRegistry, accounts, web3

from scripts import deploy


def test_deploy_script_writes_a_deployment_brownie_can_use(tmp_path):
    out = tmp_path / "deployment.json"
    deployment = deploy.main(str(out))
    document = json.loads(out.read_text())
    assert document["chain_id"] == web3.eth.chain_id
    assert document["contracts"] == deployment.addresses()
    registry = PartnerRegistry.at(document["contracts"]["PartnerRegistry"])
    assert registry.hasRole(registry.COORDINATOR_ROLE(), accounts[1])
    assert not registry.hasRole(registry.COORDINATOR_ROLE(), accounts[6])


def test_scripts_run_a_round_on_the_development_network(tmp_path, monkeypatch):
    from brownie import RewardVault, RoundLedger

    from scripts import run_round, sign_agreement

    monkeypatch.setenv("LEPTON_DATA_DIR", str(tmp_path / "data"))  # the partners' outboxes: fresh per run
    out = tmp_path / "deployment.json"
    deploy.main(str(out))
    agreement_id = sign_agreement.main(str(out), partners=2)
    setup = json.loads((tmp_path / "agreement.json").read_text())
    outcome = run_round.main(str(out))

    contracts = json.loads(out.read_text())["contracts"]
    ledger, vault = RoundLedger.at(contracts["RoundLedger"]), RewardVault.at(contracts["RewardVault"])
    finalized = ledger.round(agreement_id, 1)
    assert finalized[0] == 2  # Finalized
    assert bytes(finalized[9]) == outcome.report_digest and bytes(finalized[10]) == outcome.tree.root
    partners = [setup["parties"][name]["address"] for name in setup["partners"]]
    assert sorted(outcome.report.accepted) == sorted(partners)
    assert sum(outcome.report.payouts.values()) == 300 * 10**18 == vault.allocation(agreement_id, 1)[1]
    for address in partners:
        assert ledger.cumulativeEpsilon(agreement_id, address) > 0
