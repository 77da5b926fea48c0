"""Where a partner's accountant file lives: one convention (rounds/accountant_file.py, accountant_path) that keeps
chains, deployments, agreements and partners apart."""

from __future__ import annotations

from lepton_ledger.chain.anvil import Anvil, advance_time
from lepton_ledger.rounds.accountant_file import accountant_path

LEDGER = "0x5FC8d32690cc91D4c39d9d3abcBD16989F875707"  # where a fresh local chain puts the ledger, every time
PARTNER = "0x70997970C51812dc3A63C53cd54FfFb6F5b72C8C"


def test_two_fresh_chains_with_the_same_ledger_address_keep_separate_accountant_files(tmp_path):
    paths = []
    for seconds in (10, 20):  # block 1 of each chain at another time: two chains, same id and addresses
        with Anvil() as w3:
            advance_time(w3, seconds)
            paths.append(accountant_path(tmp_path, w3, LEDGER, 1, PARTNER))
            same_chain = accountant_path(tmp_path, w3, LEDGER, 1, PARTNER)
            others = {
                accountant_path(tmp_path, w3, LEDGER, 2, PARTNER),
                accountant_path(tmp_path, w3, LEDGER, 1, LEDGER),
                accountant_path(tmp_path, w3, PARTNER, 1, PARTNER),
            }
        assert same_chain == paths[-1] and paths[-1] not in others and len(others) == 3
        assert paths[-1].parent.parent == tmp_path and paths[-1].name == f"1-{PARTNER}.json"
    assert paths[0] != paths[1]
