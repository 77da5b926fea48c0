// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {TestBase} from "./Vm.sol";
import {PartnerRegistry} from "../../../contracts/PartnerRegistry.sol";
import {AgreementRegistry} from "../../../contracts/AgreementRegistry.sol";
import {RewardVault} from "../../../contracts/RewardVault.sol";
import {RoundLedger} from "../../../contracts/RoundLedger.sol";
import {ResultsCourt} from "../../../contracts/ResultsCourt.sol";
import {LeptonToken} from "../../../contracts/LeptonToken.sol";
import {IAgreementRegistry} from "../../../interfaces/IAgreementRegistry.sol";
import {IRoundLedger} from "../../../interfaces/IRoundLedger.sol";

/// @dev A whole deployment with accounts by role, and factories for partners and agreements.
abstract contract Fixture is TestBase {
    uint64 internal constant DISPUTE_WINDOW = 1 hours;
    uint32 internal constant EPSILON_ONE = 1e6;
    uint256 internal constant STAKE = 100e18;
    uint256 internal constant REWARD_PER_ROUND = 300e18;
    uint64 internal constant MAX_SAMPLES = 100_000;

    address internal admin = address(0xAD);
    address internal coordinator = address(0xC0);
    address internal auditor = address(0xA0D);
    address internal arbiter = address(0xA7B);
    address internal treasury = address(0x7EA);
    address internal rando = address(0xBAD);

    PartnerRegistry internal partners;
    AgreementRegistry internal agreements;
    RewardVault internal vault;
    RoundLedger internal ledger;
    ResultsCourt internal court;
    LeptonToken internal token;

    function setUp() public virtual {
        vm.warp(1_700_000_000);
        partners = new PartnerRegistry(admin);
        agreements = new AgreementRegistry(partners);
        vault = new RewardVault(partners, agreements, treasury);
        ledger = new RoundLedger(partners, agreements, vault, DISPUTE_WINDOW);
        court = new ResultsCourt(partners, agreements, vault);
        token = new LeptonToken("Lepton Reward", "LRW", admin);
        vm.startPrank(admin);
        partners.grantRole(partners.COORDINATOR_ROLE(), coordinator);
        // The fixture's operator also runs the partner registry; PartnerRegistryTest checks another coordinator
        // cannot.
        partners.grantRole(partners.REGISTRAR_ROLE(), coordinator);
        partners.grantRole(partners.AUDITOR_ROLE(), auditor);
        agreements.setVault(address(vault));
        vault.setRoundLedger(address(ledger));
        vault.setResultsCourt(address(court));
        vm.stopPrank();
    }

    /// @dev The i-th test partner: a key-backed address, so tests can sign for it.
    function partnerKey(uint256 i) internal pure returns (uint256) {
        return 0xA11CE + i;
    }

    function partnerAddr(uint256 i) internal pure returns (address) {
        return vm.addr(partnerKey(i));
    }

    function registerAndApprove(address partner) internal {
        vm.prank(partner);
        partners.register(keccak256(abi.encode("profile", partner)), keccak256(abi.encode("x25519", partner)));
        vm.prank(coordinator);
        partners.approve(partner);
    }

    function defaultTerms(address[] memory parties) internal view returns (IAgreementRegistry.Terms memory t) {
        t = IAgreementRegistry.Terms({
            termsDigest: keccak256("terms v1"),
            parties: parties,
            rewardToken: address(token),
            rewardPerRound: REWARD_PER_ROUND,
            payoutRule: IAgreementRegistry.PayoutRule.Proportional,
            epsilonCap: 8 * EPSILON_ONE,
            delta: 1e13,
            requiredStake: STAKE,
            start: uint64(block.timestamp - 10),
            end: uint64(block.timestamp + 30 days),
            maxRounds: 10,
            coordinator: coordinator,
            arbiter: arbiter,
            maxSampleCount: MAX_SAMPLES,
            coordinatorBond: 0
        });
    }

    /// @dev `n` registered, approved partners who signed and staked a proposal, which is therefore Active,
    /// with `fund` in its pool.
    function activeAgreement(uint256 n, uint256 fund) internal returns (uint256 id, address[] memory parties) {
        parties = new address[](n);
        for (uint256 i; i < n; ++i) {
            parties[i] = partnerAddr(i);
            registerAndApprove(parties[i]);
        }
        vm.prank(coordinator);
        id = agreements.propose(defaultTerms(parties));
        for (uint256 i; i < n; ++i) {
            vm.prank(admin);
            token.mint(parties[i], STAKE);
            vm.startPrank(parties[i]);
            agreements.sign(id);
            token.approve(address(vault), STAKE);
            vault.stake(id, STAKE);
            vm.stopPrank();
        }
        if (fund != 0) {
            vm.prank(admin);
            token.mint(coordinator, fund);
            vm.startPrank(coordinator);
            token.approve(address(vault), fund);
            vault.fund(id, fund);
            vm.stopPrank();
        }
    }
}

/// @dev What the test tokens have in common: LeptonToken (owner mints) and the hostile doubles (anyone mints).
interface IMintableToken {
    function mint(address to, uint256 amount) external;
}

/// @dev The Fixture plus what the round-ledger and vault tests share: assertions on more types, round and money
/// factories, payout leaves and EIP-712 update commitments computed independently of the contracts.
abstract contract LedgerFixture is Fixture {
    bytes32 internal constant MODEL_DIGEST = keccak256("global model r0");
    bytes32 internal constant EVAL_COMMITMENT = keccak256("held-out evaluation set");
    bytes32 internal constant AGGREGATE_DIGEST = keccak256("aggregate model");
    bytes32 internal constant REPORT_DIGEST = keccak256("round report");
    uint64 internal constant ROUND_LENGTH = 1 days;
    uint64 internal constant SAMPLES = 1_000;

    function assertEq(address left, address right, string memory what) internal pure {
        if (left != right) revert AssertionFailed(what, uint160(left), uint160(right));
    }

    function assertEq(bytes32 left, bytes32 right, string memory what) internal pure {
        if (left != right) revert AssertionFailed(what, uint256(left), uint256(right));
    }

    function assertFalse(bool condition, string memory what) internal pure {
        if (condition) revert AssertionFailed(what, 1, 0);
    }

    /*//////////////////////////////////////////////////////////////
                                 MONEY
    //////////////////////////////////////////////////////////////*/

    function mintTo(address tokenAddr, address to, uint256 amount) internal {
        vm.prank(admin); // LeptonToken's owner; the test doubles let anyone mint
        IMintableToken(tokenAddr).mint(to, amount);
    }

    /// @dev Approves through a low-level call, so that a token whose `approve` returns nothing works too.
    function approveFrom(address tokenAddr, address owner, address spender, uint256 amount) internal {
        vm.prank(owner);
        (bool ok,) = tokenAddr.call(abi.encodeWithSignature("approve(address,uint256)", spender, amount));
        assertTrue(ok, "approve");
    }

    function balanceOf(address tokenAddr, address account) internal view returns (uint256) {
        (bool ok, bytes memory data) = tokenAddr.staticcall(abi.encodeWithSignature("balanceOf(address)", account));
        assertTrue(ok && data.length == 32, "balanceOf");
        return abi.decode(data, (uint256));
    }

    /// @dev `funder` mints, approves and funds `amount` of the agreement's token; returns what the pool was credited.
    function fundAs(address funder, uint256 id, uint256 amount) internal returns (uint256 credited) {
        address tokenAddr = agreements.roundConfig(id).rewardToken;
        mintTo(tokenAddr, funder, amount);
        approveFrom(tokenAddr, funder, address(vault), amount);
        uint256 before = vault.pool(id).funded;
        vm.prank(funder);
        vault.fund(id, amount);
        return vault.pool(id).funded - before;
    }

    function stakeAs(address party, uint256 id, uint256 amount) internal {
        address tokenAddr = agreements.roundConfig(id).rewardToken;
        mintTo(tokenAddr, party, amount);
        approveFrom(tokenAddr, party, address(vault), amount);
        vm.prank(party);
        vault.stake(id, amount);
    }

    /// @dev Proposes `t` (its parties registered and approved), has every party sign, then stake `stakeEach`.
    function proposeSignStake(IAgreementRegistry.Terms memory t, uint256 stakeEach) internal returns (uint256 id) {
        vm.prank(coordinator);
        id = agreements.propose(t);
        for (uint256 i; i < t.parties.length; ++i) {
            vm.prank(t.parties[i]);
            agreements.sign(id);
        }
        if (stakeEach != 0) {
            for (uint256 i; i < t.parties.length; ++i) stakeAs(t.parties[i], id, stakeEach);
        }
    }

    /// @dev Parties `partnerAddr(first) .. partnerAddr(first + n - 1)`, registered and approved.
    function approvedParties(uint256 first, uint256 n) internal returns (address[] memory parties) {
        parties = new address[](n);
        for (uint256 i; i < n; ++i) {
            parties[i] = partnerAddr(first + i);
            registerAndApprove(parties[i]);
        }
    }

    /*//////////////////////////////////////////////////////////////
                                 ROUNDS
    //////////////////////////////////////////////////////////////*/

    function openRoundOn(uint256 id) internal returns (uint64 roundId) {
        vm.prank(coordinator);
        roundId = ledger.openRound(id, MODEL_DIGEST, uint64(block.timestamp) + ROUND_LENGTH, EVAL_COMMITMENT);
    }

    function envelopeOf(address party, uint64 roundId) internal pure returns (bytes32) {
        return keccak256(abi.encode("envelope", party, roundId));
    }

    function manifestOf(address party, uint64 roundId) internal pure returns (bytes32) {
        return keccak256(abi.encode("manifest", party, roundId));
    }

    function submitAs(address party, uint256 id, uint64 roundId, uint32 epsilon) internal {
        vm.prank(party);
        ledger.submitUpdate(id, roundId, envelopeOf(party, roundId), manifestOf(party, roundId), epsilon, SAMPLES);
    }

    function finalizeAs(uint256 id, uint64 roundId, bytes32 payoutRoot, uint256 total) internal {
        vm.prank(coordinator);
        ledger.finalizeRound(id, roundId, AGGREGATE_DIGEST, REPORT_DIGEST, payoutRoot, total);
    }

    /// @dev Moves past the round's deadline and finalizes it.
    function closeRound(uint256 id, uint64 roundId, bytes32 payoutRoot, uint256 total) internal {
        uint64 deadline = ledger.round(id, roundId).deadline;
        if (block.timestamp <= deadline) vm.warp(uint256(deadline) + 1);
        finalizeAs(id, roundId, payoutRoot, total);
    }

    /*//////////////////////////////////////////////////////////////
                        LEAVES, DIGESTS, SIGNATURES
    //////////////////////////////////////////////////////////////*/

    /// @dev The payout leaf as documented in IRewardVault.claim.
    function payoutLeafOf(uint256 id, uint64 roundId, address party, uint256 amount) internal pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(id, roundId, party, amount))));
    }

    /// @dev The EIP-712 digest of an update commitment, from the type string and the ledger's domain.
    function commitmentDigestOf(IRoundLedger.UpdateCommitment memory c) internal view returns (bytes32) {
        bytes32 domain = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("LeptonRoundLedger"),
                keccak256("1"),
                block.chainid,
                address(ledger)
            )
        );
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256(
                    "UpdateCommitment(uint256 agreementId,uint64 round,address partner,bytes32 envelopeDigest,bytes32 manifestDigest,uint32 cumulativeEpsilon,uint64 sampleCount)"
                ),
                c.agreementId,
                c.round,
                c.partner,
                c.envelopeDigest,
                c.manifestDigest,
                c.cumulativeEpsilon,
                c.sampleCount
            )
        );
        return keccak256(abi.encodePacked(hex"1901", domain, structHash));
    }

    function commitmentLeafOf(IRoundLedger.UpdateCommitment memory c, bytes memory signature)
        internal
        view
        returns (bytes32)
    {
        return keccak256(bytes.concat(keccak256(abi.encode(commitmentDigestOf(c), keccak256(signature)))));
    }

    function commitmentFor(uint256 id, uint64 roundId, address party, uint32 epsilon)
        internal
        pure
        returns (IRoundLedger.UpdateCommitment memory)
    {
        return IRoundLedger.UpdateCommitment({
            agreementId: id,
            round: roundId,
            partner: party,
            envelopeDigest: envelopeOf(party, roundId),
            manifestDigest: manifestOf(party, roundId),
            cumulativeEpsilon: epsilon,
            sampleCount: SAMPLES
        });
    }

    function signCommitment(uint256 key, IRoundLedger.UpdateCommitment memory c) internal view returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, commitmentDigestOf(c));
        return abi.encodePacked(r, s, v);
    }

    /// @dev One packed batch entry: uint16 party index, uint32 cumulative epsilon, big-endian.
    /// @dev The agreement's packed epsilon words now, as the ledger's snapshots take them: lanes of the
    /// agreement's width (24 or 32 bits), 256 / width to a word.
    function epsilonWordsNow(uint256 id, address[] memory parties) internal view returns (uint256[] memory words) {
        uint256 bits = agreements.roundConfig(id).epsilonLaneBits;
        uint256 lanes = 256 / bits;
        words = new uint256[]((parties.length + lanes - 1) / lanes);
        for (uint256 i; i < parties.length; ++i) {
            words[i / lanes] |= uint256(ledger.cumulativeEpsilon(id, parties[i])) << ((i % lanes) * bits);
        }
    }

    function entryOf(uint256 index, uint32 epsilon) internal pure returns (bytes memory) {
        return abi.encodePacked(uint16(index), epsilon);
    }
}
