// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {TestBase} from "./Vm.sol";
import {PartnerRegistry} from "../../../contracts/PartnerRegistry.sol";
import {AgreementRegistry} from "../../../contracts/AgreementRegistry.sol";
import {RewardVault} from "../../../contracts/RewardVault.sol";
import {RoundLedger} from "../../../contracts/RoundLedger.sol";
import {LeptonToken} from "../../../contracts/LeptonToken.sol";
import {IAgreementRegistry} from "../../../interfaces/IAgreementRegistry.sol";

/// @dev A whole deployment with accounts by role, and factories for partners and agreements.
abstract contract Fixture is TestBase {
    uint64 internal constant DISPUTE_WINDOW = 1 hours;
    uint32 internal constant EPSILON_ONE = 1e6;
    uint256 internal constant STAKE = 100e18;
    uint256 internal constant REWARD_PER_ROUND = 300e18;

    address internal admin = address(0xAD);
    address internal coordinator = address(0xC0);
    address internal auditor = address(0xA0D);
    address internal treasury = address(0x7EA);
    address internal rando = address(0xBAD);

    PartnerRegistry internal partners;
    AgreementRegistry internal agreements;
    RewardVault internal vault;
    RoundLedger internal ledger;
    LeptonToken internal token;

    function setUp() public virtual {
        vm.warp(1_700_000_000);
        partners = new PartnerRegistry(admin);
        agreements = new AgreementRegistry(partners);
        vault = new RewardVault(partners, agreements, treasury);
        ledger = new RoundLedger(partners, agreements, vault, DISPUTE_WINDOW);
        token = new LeptonToken("Lepton Reward", "LRW", admin);
        vm.startPrank(admin);
        partners.grantRole(partners.COORDINATOR_ROLE(), coordinator);
        partners.grantRole(partners.AUDITOR_ROLE(), auditor);
        agreements.setVault(address(vault));
        vault.setRoundLedger(address(ledger));
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
            maxRounds: 10
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
