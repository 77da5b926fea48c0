"""Permission matrix of the four contracts: every privileged function x every wrong caller -> the exact error.

Every call is made against a deployment in which it would otherwise get past its first checks (an active,
funded agreement with an open round, an anchored batch and an open challenge), and each row has a control:
the right caller is not refused for its role.
"""

from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

import brownie
import pytest
from brownie import chain, web3
from conftest import (
    ADMIN_ROLE,
    COORDINATOR_ROLE,
    DISPUTE_WINDOW,
    EPSILON_ONE,
    REGISTRAR_ROLE,
    reverts_with,
)

ROOT = web3.keccak(text="commitments root")
DOCUMENT = web3.keccak(text="batch document")
MODEL = web3.keccak(text="model")
EVAL = web3.keccak(text="evaluation commitment")
AGGREGATE = web3.keccak(text="aggregate")
REPORT = web3.keccak(text="report")
EVIDENCE = web3.keccak(text="evidence")
RULING = web3.keccak(text="ruling")
REASON = web3.keccak(text="reason")
ZERO = b"\x00" * 32
ROUND_LENGTH = 86400


def entry(index: int, epsilon: int) -> bytes:
    """One batch entry: uint16 party index, uint32 cumulative epsilon."""
    return index.to_bytes(2, "big") + epsilon.to_bytes(4, "big")


@pytest.fixture(scope="module")
def world(
    partners,
    agreements,
    vault,
    ledger,
    active_agreement,
    make_terms,
    admin,
    coordinator,
    auditor,
    partner_a,
    partner_b,
    partner_c,
    rando,
    treasury,
):
    """An active funded agreement with round 1 open, one batch anchored (partner_a's update) and an open
    challenge against it; plus a pending partner for approve."""
    round_id = ledger.openRound(
        active_agreement, MODEL, chain.time() + ROUND_LENGTH, EVAL, {"from": coordinator}
    ).return_value
    entries = entry(0, EPSILON_ONE)
    ledger.commitBatch(active_agreement, round_id, ROOT, DOCUMENT, entries, {"from": coordinator})
    challenge_id = ledger.challenge(active_agreement, round_id, partner_a, EVIDENCE, {"from": auditor}).return_value
    pending = brownie.accounts[8]
    partners.register(web3.keccak(text="p"), web3.keccak(text="k"), {"from": pending})
    return SimpleNamespace(
        contracts={"partners": partners, "agreements": agreements, "ledger": ledger, "vault": vault},
        callers={
            "admin": admin,
            "coordinator": coordinator,
            "auditor": auditor,
            "partner": partner_a,
            "rando": rando,
        },
        agreement=active_agreement,
        round=round_id,
        entries=entries,
        challenge=challenge_id,
        pending=pending,
        terms=make_terms([partner_a, partner_b, partner_c], termsDigest=web3.keccak(text="terms v2")),
        partner_a=partner_a,
        coordinator=coordinator,
        rando=rando,
        treasury=treasury,
        ledger=ledger,
        vault=vault,
    )


CONTRACT_NAMES = {
    "partners": "PartnerRegistry",
    "agreements": "AgreementRegistry",
    "ledger": "RoundLedger",
    "vault": "RewardVault",
}


@dataclass(frozen=True)
class Case:
    contract: str
    function: str
    right: str  # "admin", "coordinator", "auditor", or "ledger"/"vault" for contract-only functions
    args: Callable
    error: str  # the refusal, which names the caller
    role: bytes | None = None  # for OpenZeppelin's AccessControlUnauthorizedAccount(caller, role)
    right_outcome: str | None = None  # what the right caller gets with these arguments: None = success, or an error
    names_agreement: bool = False  # the refusal names the agreement before the caller (a per-agreement right)

    def __str__(self):
        return f"{CONTRACT_NAMES[self.contract]}.{self.function}"


def forged_commitment_args(w):
    evidence = (w.agreement, w.round, 0, ROOT, DOCUMENT, w.entries, 0, [])
    commitment = (w.agreement, w.round, str(w.partner_a), EVIDENCE, EVIDENCE, EPSILON_ONE, 1000)
    return evidence, commitment, b"\x00" * 65


CASES = [
    # PartnerRegistry (OpenZeppelin AccessControl)
    Case(
        "partners",
        "approve",
        "coordinator",
        lambda w: (w.pending,),
        "AccessControlUnauthorizedAccount",
        REGISTRAR_ROLE,
    ),
    Case(
        "partners",
        "suspend",
        "coordinator",
        lambda w: (w.partner_a, REASON),
        "AccessControlUnauthorizedAccount",
        REGISTRAR_ROLE,
    ),
    Case(
        "partners",
        "grantRole",
        "admin",
        lambda w: (COORDINATOR_ROLE, w.rando),
        "AccessControlUnauthorizedAccount",
        ADMIN_ROLE,
    ),
    Case(
        "partners",
        "revokeRole",
        "admin",
        lambda w: (COORDINATOR_ROLE, w.coordinator),
        "AccessControlUnauthorizedAccount",
        ADMIN_ROLE,
    ),
    # AgreementRegistry
    Case(
        "agreements",
        "setVault",
        "admin",
        lambda w: (w.vault,),
        "AgreementRegistryNotAdmin",
        right_outcome="AgreementRegistryVaultAlreadySet",
    ),
    Case("agreements", "propose", "coordinator", lambda w: (w.terms,), "AgreementRegistryNotCoordinator"),
    Case(
        "agreements",
        "amend",
        "coordinator",
        lambda w: (w.agreement, w.terms),
        "AgreementRegistryNotAgreementCoordinator",
        names_agreement=True,
    ),
    Case(
        "agreements",
        "terminate",
        "coordinator",
        lambda w: (w.agreement, REASON),
        "AgreementRegistryNotAgreementCoordinator",
        names_agreement=True,
    ),
    # RoundLedger
    Case(
        "ledger",
        "openRound",
        "coordinator",
        lambda w: (w.agreement, MODEL, chain.time() + 3600, EVAL),
        "RoundLedgerNotCoordinator",
        right_outcome="RoundLedgerRoundAlreadyOpen",
    ),
    Case(
        "ledger",
        "commitBatch",
        "coordinator",
        lambda w: (w.agreement, w.round, ROOT, DOCUMENT, entry(1, EPSILON_ONE)),
        "RoundLedgerNotCoordinator",
    ),
    Case(
        "ledger",
        "finalizeRound",
        "coordinator",
        lambda w: (w.agreement, w.round, AGGREGATE, REPORT, ZERO, 0),
        "RoundLedgerNotCoordinator",
        right_outcome="RoundLedgerRoundStillRunning",
    ),
    Case(
        "ledger",
        "challenge",
        "auditor",
        lambda w: (w.agreement, w.round, w.partner_a, EVIDENCE),
        "RoundLedgerNotAuditor",
        right_outcome="RoundLedgerAlreadyChallenged",
    ),
    # The test agreements name the admin account as their arbiter (conftest.make_terms).
    Case(
        "ledger",
        "resolveChallenge",
        "admin",
        lambda w: (w.challenge, True, RULING),
        "RoundLedgerNotArbiter",
        names_agreement=True,
    ),
    Case(
        "ledger",
        "proveForgedCommitment",
        "auditor",
        forged_commitment_args,
        "RoundLedgerNotAuditor",
        right_outcome="RoundLedgerInvalidMerkleProof",
    ),
    Case(
        "ledger",
        "markChallengeExecuted",
        "vault",
        lambda w: (w.challenge,),
        "RoundLedgerNotVault",
        right_outcome="RoundLedgerInvalidChallengeStatus",
    ),
    # RewardVault
    Case(
        "vault",
        "setRoundLedger",
        "admin",
        lambda w: (w.ledger,),
        "RewardVaultNotAdmin",
        right_outcome="RewardVaultLedgerAlreadySet",
    ),
    Case("vault", "allocate", "ledger", lambda w: (w.agreement, 9, ROOT, 1, chain.time()), "RewardVaultNotLedger"),
    Case(
        "vault",
        "revokeAllocation",
        "ledger",
        lambda w: (w.agreement, w.round),
        "RewardVaultNotLedger",
        right_outcome="RewardVaultNoAllocation",
    ),
]
CALLERS = ("admin", "coordinator", "auditor", "partner", "rando")
MATRIX = [(case, caller) for case in CASES for caller in CALLERS if caller != case.right]


@pytest.fixture
def impersonate():
    """impersonate(contract) -> an account sending as `contract` (anvil), for the contract-only functions."""
    impersonated = []

    def _impersonate(contract):
        web3.provider.make_request("anvil_impersonateAccount", [contract.address])
        impersonated.append(contract.address)
        return brownie.accounts.at(contract.address, force=True)

    yield _impersonate
    for address in impersonated:
        web3.provider.make_request("anvil_stopImpersonatingAccount", [address])


@pytest.mark.parametrize("case, caller", MATRIX, ids=[f"{case}-by-{caller}" for case, caller in MATRIX])
def test_privileged_function_refuses_wrong_caller(world, reverts_exactly, case, caller):
    account = world.callers[caller]
    function = getattr(world.contracts[case.contract], case.function)
    expected = (account, case.role) if case.role is not None else (account,)
    if case.names_agreement:
        expected = (world.agreement, account)

    with reverts_exactly(case.error, *expected):
        function(*case.args(world), {"from": account})


@pytest.mark.parametrize("case", CASES, ids=[str(case) for case in CASES])
def test_privileged_function_admits_right_caller(world, impersonate, case):
    if case.right in world.callers:
        account = world.callers[case.right]
    else:
        account = impersonate(world.contracts[case.right])
    function = getattr(world.contracts[case.contract], case.function)

    if case.right_outcome is None:
        tx = function(*case.args(world), {"from": account})
        assert tx.status == 1
    else:
        with reverts_with(case.right_outcome):
            function(*case.args(world), {"from": account})


# The contract-only functions also admit their contract through the flows that make those calls.


def test_ledger_is_admitted_by_vault_allocate(world, ledger, vault, coordinator, assert_events):
    chain.sleep(ROUND_LENGTH + 1)

    tx = ledger.finalizeRound(world.agreement, world.round, AGGREGATE, REPORT, ROOT, 100, {"from": coordinator})

    assert vault.allocation(world.agreement, world.round)[1] == 100
    assert_events(
        tx,
        (
            "Allocated",
            {
                "agreementId": world.agreement,
                "round": world.round,
                "root": ROOT,
                "total": 100,
                "claimableAt": tx.timestamp + DISPUTE_WINDOW,
            },
        ),
        emitter=vault,
    )


def test_vault_is_admitted_by_ledger_mark_challenge_executed(world, vault, rando):
    # The challenge is still open: the ledger refuses it for its status, after the caller check passed.
    with reverts_with("RoundLedgerInvalidChallengeStatus", world.challenge, 1):
        vault.slash(world.challenge, {"from": rando})
