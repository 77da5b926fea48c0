"""`brownie run deploy`: deploys lepton-ledger on the active development network and writes
deployment.json. Thin: lepton_ledger.chain does the work, so the CLI and the scripts deploy alike.

The roles go to the development accounts (anvil's well-known keys): admin 0, coordinator 1, auditor 2,
slash recipient 7. Signing happens with those keys, never through an unlocked node account.
"""

from pathlib import Path

from brownie import network, web3
from brownie._config import CONFIG

from lepton_ledger.chain.deployment import DevRoles, deploy_with_roles
from lepton_ledger.chain.transactions import Transactor
from lepton_ledger.errors import ConfigurationError

DISPUTE_WINDOW = 3600


def main(out: str = "deployment.json"):
    active = network.show_active()
    if "cmd" not in CONFIG.networks.get(active, {}):  # only networks brownie launches itself are local
        raise ConfigurationError(f"deploy.py signs with development keys; {active!r} is not a local network")
    roles = DevRoles.from_dev_keys()
    deployment = deploy_with_roles(Transactor(web3, roles.accounts()), roles, dispute_window=DISPUTE_WINDOW)
    deployment.write(Path(out), rpc_url=web3.provider.endpoint_uri, chain_id=web3.eth.chain_id)
    for name, address in deployment.addresses().items():
        print(f"{name}: {address}")
    return deployment
