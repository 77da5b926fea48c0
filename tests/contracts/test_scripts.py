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
