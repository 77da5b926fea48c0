"""Shared set-up of the brownie contract tests: accounts named by role, a fresh deployment, factories.

Every test runs in isolation (brownie snapshots the chain before each test and reverts after), so the
module-scoped deployment below is paid once per module.
"""

from contextlib import contextmanager

import brownie
import pytest
from brownie import (
    AgreementRegistry,
    FeeOnTransferToken,
    LeptonToken,
    NoReturnToken,
    PartnerRegistry,
    ReentrantToken,
    RewardVault,
    RoundLedger,
    SmartWallet,
    accounts,
    chain,
    web3,
)
from eth_account import Account

COORDINATOR_ROLE = web3.keccak(text="COORDINATOR_ROLE")
AUDITOR_ROLE = web3.keccak(text="AUDITOR_ROLE")
ADMIN_ROLE = b"\x00" * 32
DISPUTE_WINDOW = 3600
EPSILON_ONE = 1_000_000  # fixed point: 1e6 = 1.0
DELTA_1E5 = 10**13  # 1e-5 with 1e18 = 1.0
STAKE = 100 * 10**18
REWARD_PER_ROUND = 300 * 10**18
# anvil's default mnemonic ("test test ... junk"), which brownie's development networks use: the private
# keys of accounts[i] are known, so tests can make EIP-712 signatures for them.
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
Account.enable_unaudited_hdwallet_features()


def private_key_of(index: int) -> bytes:
    return Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}").key


@pytest.fixture(autouse=True)
def isolation(fn_isolation):
    pass


@pytest.fixture(scope="module")
def admin():
    return accounts[0]


@pytest.fixture(scope="module")
def coordinator():
    return accounts[1]


@pytest.fixture(scope="module")
def auditor():
    return accounts[2]


@pytest.fixture(scope="module")
def partner_a():
    return accounts[3]


@pytest.fixture(scope="module")
def partner_b():
    return accounts[4]


@pytest.fixture(scope="module")
def partner_c():
    return accounts[5]


@pytest.fixture(scope="module")
def rando():
    return accounts[6]


@pytest.fixture(scope="module")
def treasury():
    return accounts[7]


@pytest.fixture(scope="module")
def partners(admin, coordinator, auditor):
    registry = PartnerRegistry.deploy(admin, {"from": admin})
    registry.grantRole(COORDINATOR_ROLE, coordinator, {"from": admin})
    registry.grantRole(AUDITOR_ROLE, auditor, {"from": admin})
    return registry


@pytest.fixture(scope="module")
def agreements(partners, admin):
    return AgreementRegistry.deploy(partners, {"from": admin})


@pytest.fixture(scope="module")
def vault(partners, agreements, admin, treasury):
    deployed = RewardVault.deploy(partners, agreements, treasury, {"from": admin})
    agreements.setVault(deployed, {"from": admin})
    return deployed


@pytest.fixture(scope="module")
def ledger(partners, agreements, vault, admin):
    deployed = RoundLedger.deploy(partners, agreements, vault, DISPUTE_WINDOW, {"from": admin})
    vault.setRoundLedger(deployed, {"from": admin})
    return deployed


@pytest.fixture(scope="module")
def token(admin, coordinator, partner_a, partner_b, partner_c):
    deployed = LeptonToken.deploy("Lepton Reward", "LRW", admin, {"from": admin})
    for holder in (coordinator, partner_a, partner_b, partner_c):
        deployed.mint(holder, 10_000 * 10**18, {"from": admin})
    return deployed


@pytest.fixture(scope="module")
def no_return_token(admin):
    return NoReturnToken.deploy({"from": admin})


@pytest.fixture(scope="module")
def fee_token(admin):
    return FeeOnTransferToken.deploy({"from": admin})


@pytest.fixture(scope="module")
def reentrant_token(admin):
    return ReentrantToken.deploy({"from": admin})


@pytest.fixture(scope="module")
def smart_wallet(admin, partner_c):
    """An ERC-1271 wallet owned by partner_c's key."""
    return SmartWallet.deploy(partner_c, {"from": admin})


@pytest.fixture(scope="module")
def register(partners, coordinator):
    """register(account, approve=True): registers `account` as a partner with a distinct key."""

    def _register(account, approve=True):
        key = web3.keccak(text=f"x25519:{account.address}")
        profile = web3.keccak(text=f"profile:{account.address}")
        partners.register(profile, key, {"from": account})
        if approve:
            partners.approve(account, {"from": coordinator})
        return key

    return _register


@pytest.fixture(scope="module")
def make_terms(token):
    """make_terms(parties, **overrides) -> the Terms tuple, with sensible defaults."""

    def _make_terms(parties, **overrides):
        now = chain.time()
        fields = dict(
            termsDigest=web3.keccak(text="terms v1"),
            parties=[str(p) for p in parties],
            rewardToken=str(overrides.pop("rewardToken", None) or token),
            rewardPerRound=REWARD_PER_ROUND,
            payoutRule=0,
            epsilonCap=8 * EPSILON_ONE,
            delta=DELTA_1E5,
            requiredStake=STAKE,
            start=now - 10,
            end=now + 30 * 86400,
            maxRounds=10,
        )
        fields.update(overrides)
        return tuple(fields.values())

    return _make_terms


@pytest.fixture(scope="module")
def make_agreement(partners, agreements, vault, ledger, coordinator, register, make_terms, token):
    """make_agreement(parties, sign=True, stake=True, fund=0, **terms) -> agreement id.

    Registers and approves the parties when needed, proposes, and optionally has every party sign and stake
    (which activates the agreement) and the coordinator fund the pool.
    """

    def _make_agreement(parties, sign=True, stake=True, fund=0, **overrides):
        for party in parties:
            if partners.partnerOf(party)[0] == 0:  # PartnerStatus.None
                register(party)
        terms = make_terms(parties, **overrides)
        tx = agreements.propose(terms, {"from": coordinator})
        agreement_id = tx.return_value
        required = terms[7]
        reward_token = overrides.get("rewardToken") or token
        for party in parties:
            if sign:
                agreements.sign(agreement_id, {"from": party})
            if stake and required:
                reward_token.approve(vault, required, {"from": party})
                vault.stake(agreement_id, required, {"from": party})
        if fund:
            reward_token.approve(vault, fund, {"from": coordinator})
            vault.fund(agreement_id, fund, {"from": coordinator})
        return agreement_id

    return _make_agreement


@pytest.fixture(scope="module")
def active_agreement(make_agreement, partner_a, partner_b, partner_c):
    """An Active agreement between partners a, b and c, funded with 10 rounds of rewards."""
    return make_agreement([partner_a, partner_b, partner_c], fund=10 * REWARD_PER_ROUND)


@contextmanager
def reverts_with(error_name: str, *args):
    """Asserts that the block reverts with custom error `error_name` (and, when given, exactly `args`).

    brownie decodes a custom error as "Name: arg1, arg2"; comparing the name keeps tests independent of how
    it formats each argument, and `args` pins the arguments where they matter.
    """
    try:
        yield
    except brownie.exceptions.VirtualMachineError as exc:
        message = exc.revert_msg or ""
        name, _, rest = message.partition(":")
        assert name == error_name, f"reverted with {message!r}, expected {error_name}"
        if args:
            found = [part.strip() for part in rest.split(",")] if rest.strip() else []
            expected = [_format_arg(a) for a in args]
            assert found == expected, f"{error_name} arguments {found}, expected {expected}"
    else:
        raise AssertionError(f"did not revert; expected {error_name}")


def _format_arg(value) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if hasattr(value, "address"):
        return str(value.address).lower()
    if isinstance(value, str) and value.startswith("0x"):
        return value.lower()
    return str(value)
