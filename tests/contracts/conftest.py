"""Shared set-up of the brownie contract tests: accounts named by role, a fresh deployment, factories.

Every test runs in isolation (brownie snapshots the chain before each test and reverts after), so the
module-scoped deployment below is paid once per module.
"""

from contextlib import contextmanager

import brownie
import pytest
from brownie import (
    AgreementRegistry,
    BatchDisputes,
    ChallengeDesk,
    FeeOnTransferToken,
    LeptonToken,
    NoReturnToken,
    PartnerRegistry,
    ReentrantToken,
    ResultsCourt,
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
REGISTRAR_ROLE = web3.keccak(text="REGISTRAR_ROLE")
ADMIN_ROLE = b"\x00" * 32
DISPUTE_WINDOW = 3600
EPSILON_ONE = 1_000_000  # fixed point: 1e6 = 1.0
DELTA_1E5 = 10**13  # 1e-5 with 1e18 = 1.0
STAKE = 100 * 10**18
MAX_SAMPLES = 100_000
REWARD_PER_ROUND = 300 * 10**18
# anvil's default mnemonic ("test test ... junk"), which brownie's development networks use: the private
# keys of accounts[i] are known, so tests can make EIP-712 signatures for them.
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
Account.enable_unaudited_hdwallet_features()


def private_key_of(index: int) -> bytes:
    return Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}").key


@pytest.fixture(autouse=True)
def isolation(fn_isolation):
    """Every test runs on a snapshot that is reverted after it, with brownie's clock re-aligned to the chain's
    (see `synced_clock`: without it, long sessions drift until `chain.time()` runs ahead of block time)."""
    chain.mine()


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
    registry.grantRole(REGISTRAR_ROLE, coordinator, {"from": admin})  # the operator also vets partners
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
    # brownie links RoundLedger to the latest deployment of each of its external libraries.
    BatchDisputes.deploy({"from": admin})
    ChallengeDesk.deploy({"from": admin})
    deployed = RoundLedger.deploy(partners, agreements, vault, DISPUTE_WINDOW, {"from": admin})
    vault.setRoundLedger(deployed, {"from": admin})
    # Rounds open only once the results court, which holds the coordinator bonds, is bound to the vault.
    court = ResultsCourt.deploy(partners, agreements, vault, {"from": admin})
    vault.setResultsCourt(court, {"from": admin})
    return deployed


@pytest.fixture(scope="module")
def court(ledger, vault):
    return ResultsCourt.at(vault.resultsCourt())


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
def make_terms(token, coordinator, admin):
    """make_terms(parties, **overrides) -> the Terms tuple, with sensible defaults. The test agreements name the
    coordinator account as their coordinator and the admin account as their arbiter."""

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
            coordinator=str(coordinator),
            arbiter=str(admin),
            maxSampleCount=MAX_SAMPLES,
            coordinatorBond=0,
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


# ---------------------------------------------------------------------------------------------------------------
# Exact events and exact reverts (registry and permission tests)
# ---------------------------------------------------------------------------------------------------------------


def _canonical(value):
    """One spelling for values that brownie returns in several (HexString, checksummed str, ReturnValue)."""
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if hasattr(value, "address"):
        return str(value.address).lower()
    if isinstance(value, str):
        return value.lower() if value.startswith("0x") else value
    if isinstance(value, dict):
        return {key: _canonical(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return tuple(_canonical(item) for item in value)
    return value


@pytest.fixture(scope="session")
def assert_events():
    """assert_events(tx, *expected, emitter=None): `tx` emitted exactly `expected`, in order.

    Each expected event is `(name, {arg: value, ...})` with every argument. With `emitter`, only that
    contract's events count (a stake, say, also logs the token's Transfer).
    """

    def _assert_events(tx, *expected, emitter=None):
        address = None if emitter is None else str(getattr(emitter, "address", emitter)).lower()
        found = [
            (event.name, _canonical(dict(event)))
            for event in tx.events
            if address is None or str(event.address).lower() == address
        ]
        wanted = [(name, _canonical(dict(args))) for name, args in expected]
        assert found == wanted, f"events {found}, expected {wanted}"

    return _assert_events


def _error_arg(value) -> str:
    # brownie formats each decoded argument with str(): lower-case addresses, Python reprs of bytes.
    if isinstance(value, (bytes, bytearray)):
        return str(bytes(value))
    if hasattr(value, "address"):
        return str(value.address).lower()
    if isinstance(value, str) and value.startswith("0x"):
        return value.lower()
    return str(value)


@pytest.fixture(scope="session")
def reverts_exactly():
    """reverts_exactly(name, *args): like `reverts_with`, but compares the whole decoded error, so that it
    also pins bytes32 arguments (which brownie prints as Python bytes, commas and all)."""

    @contextmanager
    def _reverts_exactly(error_name: str, *args):
        expected = f"{error_name}: {', '.join(_error_arg(a) for a in args)}"
        try:
            yield
        except brownie.exceptions.VirtualMachineError as exc:
            assert (exc.revert_msg or "") == expected, f"reverted with {exc.revert_msg!r}, expected {expected!r}"
        else:
            raise AssertionError(f"did not revert; expected {expected}")

    return _reverts_exactly


# ---------------------------------------------------------------------------------------------------------------
# Rounds, batches, payouts and the vault's books (round ledger, batch, vault, challenge and hostile-token tests)
# ---------------------------------------------------------------------------------------------------------------


def hex32(value) -> str:
    """bytes32 as the 0x-hex string brownie compares its return values with (it refuses HexBytes)."""
    return "0x" + bytes(value).hex()


def digest_of(text: str) -> str:
    return hex32(web3.keccak(text=text))


MODEL_DIGEST = digest_of("model v0")
EVAL_COMMITMENT = digest_of("held-out evaluation set")
AGGREGATE_DIGEST = digest_of("aggregate")
REPORT_DIGEST = digest_of("round report")
ZERO_DIGEST = hex32(b"\x00" * 32)
ROUND_LENGTH = 86400


def now():
    """The timestamp of the latest block: what the next call sees as block.timestamp."""
    return web3.eth.get_block("latest").timestamp


def advance(seconds):
    """Mines a block exactly `seconds` after the latest one, so that calls (not only transactions) see the
    new time; brownie's clock follows (chain.mine syncs it from the block)."""
    web3.provider.make_request("evm_setNextBlockTimestamp", [now() + seconds])
    chain.mine()


def at_block(timestamp):
    """Makes `timestamp` the next block's timestamp: the next transaction runs exactly then. Send it with a
    `gas_limit`, or brownie's gas estimate (run on the latest block, earlier) may decide for it."""
    web3.provider.make_request("evm_setNextBlockTimestamp", [timestamp])


@pytest.fixture
def synced_clock():
    """Re-aligns brownie's clock with the chain's before a test.

    anvil's evm_revert rewinds its clock to the snapshot's block, so every reverted test costs it the wall
    time the test took, while `chain.time()` keeps following the wall clock: after a few dozen tests
    `chain.time()` runs ahead of block.timestamp by more than `make_terms`' 10 s margin on `start`. Mining one
    block resynchronises brownie's offset from that block.
    """
    chain.mine()


def update_digests(partner, round_id):
    """The (envelope, manifest) digests a partner commits to in a round: distinct for each."""
    tag = f"{str(partner).lower()}:{round_id}"
    return digest_of(f"envelope:{tag}"), digest_of(f"manifest:{tag}")


@pytest.fixture(scope="module")
def open_round(ledger, coordinator):
    """open_round(agreement_id, duration=ROUND_LENGTH) -> round id, opened by the coordinator."""

    def _open_round(agreement_id, duration=ROUND_LENGTH):
        deadline = now() + duration
        tx = ledger.openRound(agreement_id, MODEL_DIGEST, deadline, EVAL_COMMITMENT, {"from": coordinator})
        return tx.return_value

    return _open_round


@pytest.fixture(scope="module")
def submit(ledger):
    """submit(agreement_id, round_id, partner, epsilon=None, samples=1000) -> tx; epsilon defaults to the
    partner's cumulative epsilon plus 1.0."""

    def _submit(agreement_id, round_id, partner, epsilon=None, samples=1000):
        if epsilon is None:
            epsilon = ledger.cumulativeEpsilon(agreement_id, partner) + EPSILON_ONE
        envelope, manifest = update_digests(partner, round_id)
        return ledger.submitUpdate(agreement_id, round_id, envelope, manifest, epsilon, samples, {"from": partner})

    return _submit


@pytest.fixture(scope="module")
def finalize(ledger, coordinator):
    """finalize(agreement_id, round_id, payouts=None) -> the PayoutTree (None without payouts); `payouts`
    maps accounts to amounts."""
    from lepton_ledger.chain.merkle import PayoutTree

    def _finalize(agreement_id, round_id, payouts=None):
        tree = PayoutTree(agreement_id, round_id, {str(k): v for k, v in payouts.items()}) if payouts else None
        root, total = (tree.root, tree.total) if tree else (b"\x00" * 32, 0)
        ledger.finalizeRound(
            agreement_id, round_id, AGGREGATE_DIGEST, REPORT_DIGEST, root, total, {"from": coordinator}
        )
        return tree

    return _finalize


@pytest.fixture(scope="module")
def run_round(agreements, open_round, submit, finalize):
    """run_round(agreement_id, payouts=None) -> (round id, PayoutTree): every party submits, then the
    coordinator finalizes with `payouts`."""

    def _run_round(agreement_id, payouts=None):
        round_id = open_round(agreement_id)
        for party in agreements.terms(agreement_id)[1]:
            submit(agreement_id, round_id, party)
        return round_id, finalize(agreement_id, round_id, payouts)

    return _run_round


def _private_key(account):
    """The key of one of anvil's default accounts, or of an account made with `accounts.add(key)`."""
    if getattr(account, "private_key", None):
        return bytes.fromhex(account.private_key[2:])
    return private_key_of(list(accounts).index(account))


class Batch:
    """A batch of signed commitments as the coordinator publishes and anchors it.

    `items` are (party, cumulative epsilon anchored) pairs in the order anchored; `signed` optionally
    overrides, per position, what is signed (`epsilon`, `partner`) and with which `key`.
    """

    def __init__(self, ledger, agreements, agreement_id, round_id, items, signed=None):
        from lepton_ledger.chain.merkle import (
            PositionalTree,
            commitment_leaf,
            pack_entries,
        )
        from lepton_ledger.chain.typed_data import (
            UpdateCommitment,
            sign_digest,
            update_commitment_digest,
        )

        signed = signed or {}
        self.agreement_id, self.round_id = agreement_id, round_id
        self.commitments, self.signatures, leaves, entries = [], [], [], []
        for position, (party, epsilon) in enumerate(items):
            override = signed.get(position, {})
            is_party, index = agreements.partyIndex(agreement_id, party)
            assert is_party, f"{party} is not a party of agreement {agreement_id}"
            envelope, manifest = update_digests(party, round_id)
            commitment = UpdateCommitment(
                agreement_id=agreement_id,
                round=round_id,
                partner=str(override.get("partner", party)),
                envelope_digest=envelope,
                manifest_digest=manifest,
                cumulative_epsilon=override.get("epsilon", epsilon),
                sample_count=1000,
            )
            key = override.get("key") or _private_key(party)
            digest = update_commitment_digest(chain.id, ledger.address, commitment)
            signature = sign_digest(key, digest)
            self.commitments.append(commitment)
            self.signatures.append(signature)
            leaves.append(commitment_leaf(digest, signature))
            entries.append((index, epsilon))
        self.entries = pack_entries(entries)
        self.tree = PositionalTree(leaves)
        self.root = self.tree.root
        self.document_digest = digest_of(f"batch:{agreement_id}:{round_id}:{self.root.hex()}")

    def evidence(self, batch_index, at, **overrides):
        """The BatchEvidence tuple for the commitment at position `at`, with fields overridden by name."""
        fields = {
            "agreementId": self.agreement_id,
            "round": self.round_id,
            "batchIndex": batch_index,
            "root": self.root,
            "documentDigest": self.document_digest,
            "entries": self.entries,
            "position": at,
            "proof": self.tree.proof(at),
        }
        fields.update(overrides)
        return tuple(fields.values())


@pytest.fixture(scope="module")
def make_batch(ledger, agreements):
    """make_batch(agreement_id, round_id, items, signed=None) -> Batch (see Batch)."""

    def _make_batch(agreement_id, round_id, items, signed=None):
        return Batch(ledger, agreements, agreement_id, round_id, items, signed)

    return _make_batch


@pytest.fixture(scope="module")
def commit_batch(ledger, coordinator):
    """commit_batch(batch) -> tx: the coordinator anchors `batch`."""

    def _commit_batch(batch):
        return ledger.commitBatch(
            batch.agreement_id, batch.round_id, batch.root, batch.document_digest, batch.entries, {"from": coordinator}
        )

    return _commit_batch


@pytest.fixture(scope="module")
def assert_books(vault, agreements, ledger):
    """assert_books(*agreement_ids): the vault's books hold for each agreement, and its balance of every
    reward token equals what its books say it holds for all the agreements in that token.

    Per agreement: funded == paid + claimable + slashed + unallocated + reclaimed; claimable equals the sum of
    the unclaimed parts of its live (unrevoked) allocations; staked == unstaked + stakeSlashed + stakes held.
    """

    def _assert_books(*agreement_ids):
        held_by_token = {}
        for agreement_id in range(1, agreements.agreementCount() + 1):
            pool = vault.pool(agreement_id).dict()
            reward_token = agreements.terms(agreement_id)[2]
            held = pool["funded"] - pool["paid"] - pool["slashed"] - pool["reclaimed"]
            held += pool["staked"] - pool["unstaked"] - pool["stakeSlashed"]
            held_by_token[reward_token] = held_by_token.get(reward_token, 0) + held
        for agreement_id in agreement_ids:
            pool = vault.pool(agreement_id).dict()
            claimable, unallocated = vault.claimable(agreement_id), vault.unallocated(agreement_id)
            assert pool["funded"] == (pool["paid"] + claimable + pool["slashed"] + unallocated + pool["reclaimed"]), (
                f"money not conserved in agreement {agreement_id}: {pool}"
            )
            outstanding = 0
            for round_id in range(1, ledger.roundCount(agreement_id) + 1):
                allocation = vault.allocation(agreement_id, round_id).dict()
                if not allocation["revoked"]:
                    outstanding += allocation["total"] - allocation["claimed"]
            assert claimable == outstanding, f"claimable {claimable} != unclaimed allocations {outstanding}"
            parties = agreements.terms(agreement_id)[1]
            stakes = sum(vault.stakeOf(agreement_id, party) for party in parties)
            assert pool["staked"] == pool["unstaked"] + pool["stakeSlashed"] + stakes, f"stakes: {pool}"
        for reward_token, held in held_by_token.items():
            balance = web3.eth.call({"to": reward_token, "data": "0x70a08231" + "00" * 12 + vault.address[2:].lower()})
            assert int.from_bytes(balance, "big") == held, (
                f"vault holds {balance.hex()} of {reward_token}, books {held}"
            )

    return _assert_books


@pytest.fixture(scope="session", autouse=True)
def frozen_gc():
    """Moves the objects alive at session start (the loaded project: ~180k) out of the collector's reach.

    brownie runs a full `gc.collect()` on every chain revert, i.e. after every test under `fn_isolation`;
    with the project loaded that costs ~0.25 s a test, most of the suite's run time. Frozen objects are only
    skipped by the collector, never freed, which is what a session-long project wants anyway.
    """
    import gc

    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()
