"""`brownie run deploy`: deploys lepton-ledger and a reward token on the active development network and writes
deployment.json. Thin: lepton_ledger does the work (`commands.deploy.deploy_ledger`, which `lepton-ledger deploy`
uses too), so the CLI and the scripts deploy alike.

The roles go to the development accounts (anvil's well-known keys): admin 0, coordinator 1, auditor 2,
slash recipient 7. Signing happens with those keys, never through an unlocked node account.

The three scripts (deploy, sign_agreement, run_round) build on each other's chain state, so they run on the
local node, which outlives each `brownie run`: brownie-config.yaml points brownie's `anvil` network at its port
(README, "brownie"): `lepton-ledger node start --port 8545`, then `brownie run scripts/deploy.py --network anvil`,
`scripts/sign_agreement.py` and `scripts/run_round.py` likewise. Everything they write goes to brownie-out/.
"""

from pathlib import Path

from brownie import network, web3
from brownie._config import CONFIG

from lepton_ledger.chain.deployment import DevRoles
from lepton_ledger.chain.transactions import Transactor
from lepton_ledger.commands.deploy import deploy_ledger
from lepton_ledger.errors import ConfigurationError

DISPUTE_WINDOW = 3600
OUT = "brownie-out/deployment.json"  # the scripts keep what they write together, out of the project's files


def require_local_network() -> str:
    """The active network's name; refuses one that brownie does not launch itself (the keys are public)."""
    active = network.show_active()
    if "cmd" not in CONFIG.networks.get(active, {}):
        raise ConfigurationError(f"these scripts sign with development keys; {active!r} is not a local network")
    return active


def main(out: str = OUT):
    active = require_local_network()
    roles = DevRoles.from_dev_keys()
    print(
        f"network {active} (chain {web3.eth.chain_id}); sending from admin {roles.admin.address}: 7 contract "
        "creations (5 and RoundLedger's 2 libraries), setVault, setRoundLedger, setResultsCourt, 2 grantRole, "
        "a LeptonToken creation"
    )
    deployment, extra = deploy_ledger(
        Transactor(web3, roles.accounts()),
        admin=roles.admin.address,
        coordinator=roles.coordinator.address,
        auditors=[roles.auditor.address],
        slash_recipient=roles.treasury.address,
        dispute_window=DISPUTE_WINDOW,
        with_token=True,
    )
    deployment.write(Path(out), rpc_url=web3.provider.endpoint_uri, chain_id=web3.eth.chain_id, extra=extra)
    for name, address in {**deployment.addresses(), "LeptonToken": extra["reward_token"]}.items():
        print(f"{name}: {address}")
    return deployment
