// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {AgreementFixture} from "./utils/AgreementFixture.sol";
import {AgreementRegistry} from "../../contracts/AgreementRegistry.sol";
import {SmartWallet} from "../../contracts/testing/SmartWallet.sol";
import {IAgreementRegistry} from "../../interfaces/IAgreementRegistry.sol";
import {IPartnerRegistry} from "../../interfaces/IPartnerRegistry.sol";
import {IRoundLedger} from "../../interfaces/IRoundLedger.sol";

contract AgreementRegistryTest is AgreementFixture {
    bytes32 internal constant REASON = keccak256("termination reason");

    address[] internal parties;

    function setUp() public override {
        super.setUp();
        parties = approvedPartners(3);
    }

    /*//////////////////////////////////////////////////////////////
                                HELPERS
    //////////////////////////////////////////////////////////////*/

    function terms() internal view returns (IAgreementRegistry.Terms memory) {
        return defaultTerms(parties);
    }

    function stateOf(uint256 id) internal view returns (IAgreementRegistry.AgreementState memory) {
        return agreements.agreementState(id);
    }

    function assertStatus(uint256 id, IAgreementRegistry.AgreementStatus expected, string memory what) internal view {
        assertEq(uint256(stateOf(id).status), uint256(expected), what);
    }

    function wrongCallers() internal view returns (address[4] memory) {
        return [admin, auditor, rando, parties[0]];
    }

    function expectRevertWith(bytes4 selector) internal {
        vm.expectRevert(abi.encodeWithSelector(selector));
    }

    function expectNotCoordinator(address caller) internal {
        vm.expectRevert(abi.encodeWithSelector(IAgreementRegistry.AgreementRegistryNotCoordinator.selector, caller));
    }

    function expectNotAgreementCoordinator(uint256 id, address caller) internal {
        vm.expectRevert(
            abi.encodeWithSelector(IAgreementRegistry.AgreementRegistryNotAgreementCoordinator.selector, id, caller)
        );
    }

    /// @dev A second account with the coordinator role, running agreements of its own.
    function otherCoordinator() internal returns (address other) {
        other = address(0xC1);
        vm.startPrank(admin);
        partners.grantRole(partners.COORDINATOR_ROLE(), other);
        vm.stopPrank();
    }

    function expectUnknown(uint256 id) internal {
        vm.expectRevert(abi.encodeWithSelector(IAgreementRegistry.AgreementRegistryUnknownAgreement.selector, id));
    }

    function expectInvalidStatus(uint256 id, IAgreementRegistry.AgreementStatus status) internal {
        vm.expectRevert(abi.encodeWithSelector(IAgreementRegistry.AgreementRegistryInvalidStatus.selector, id, status));
    }

    function expectInvalidSignature(address party) internal {
        vm.expectRevert(abi.encodeWithSelector(IAgreementRegistry.AgreementRegistryInvalidSignature.selector, party));
    }

    /// @dev A proposal signed by every party and staked by all but the last, so still Proposed.
    function signedButUnderstaked() internal returns (uint256 id) {
        id = propose(terms());
        for (uint256 i; i < parties.length; ++i) {
            signAs(parties[i], id);
            if (i + 1 < parties.length) stakeAs(parties[i], id, STAKE);
        }
    }

    function activeId() internal returns (uint256) {
        return activate(terms());
    }

    /// @dev An Active agreement with a pending amendment that changes only its cap, to `cap`.
    function activeWithPendingCap(uint32 cap) internal returns (uint256 id) {
        id = activeId();
        IAgreementRegistry.Terms memory t = terms();
        t.epsilonCap = cap;
        vm.prank(coordinator);
        agreements.amend(id, t);
    }

    function terminateAs(uint256 id) internal {
        vm.prank(coordinator);
        agreements.terminate(id, REASON);
    }

    /// @dev Partner `i`'s relayable signature of the current version of `id`, with its current nonce.
    function sigOf(uint256 i, uint256 id, uint256 deadline) internal view returns (bytes memory) {
        address party = partnerAddr(i);
        return
            signDigest(partnerKey(i), signAgreementDigest(id, party, agreements.nonces(party), deadline, block.chainid));
    }

    /*//////////////////////////////////////////////////////////////
                                SET VAULT
    //////////////////////////////////////////////////////////////*/

    function test_setVaultBindsVaultOnce() public {
        AgreementRegistry fresh = new AgreementRegistry(partners);
        vm.expectEmit(true, true, true, true);
        emit IAgreementRegistry.VaultSet(address(vault));
        vm.prank(admin);
        fresh.setVault(address(vault));
        assertEq(fresh.vault(), address(vault), "vault");
    }

    function test_setVaultRefusesNonAdmin() public {
        AgreementRegistry fresh = new AgreementRegistry(partners);
        address[3] memory wrong = [coordinator, auditor, rando];
        for (uint256 i; i < wrong.length; ++i) {
            vm.expectRevert(abi.encodeWithSelector(IAgreementRegistry.AgreementRegistryNotAdmin.selector, wrong[i]));
            vm.prank(wrong[i]);
            fresh.setVault(address(vault));
        }
        assertEq(fresh.vault(), address(0), "vault unset");
    }

    function test_setVaultRefusesSecondVault() public {
        vm.expectRevert(
            abi.encodeWithSelector(IAgreementRegistry.AgreementRegistryVaultAlreadySet.selector, address(vault))
        );
        vm.prank(admin);
        agreements.setVault(address(0xBEEF));
    }

    function test_setVaultRefusesZeroAddress() public {
        AgreementRegistry fresh = new AgreementRegistry(partners);
        expectRevertWith(IAgreementRegistry.AgreementRegistryZeroVault.selector);
        vm.prank(admin);
        fresh.setVault(address(0));
    }

    /*//////////////////////////////////////////////////////////////
                                PROPOSE
    //////////////////////////////////////////////////////////////*/

    function test_proposeNumbersAgreementsFromOne() public {
        assertEq(propose(terms()), 1, "first id");
        assertEq(propose(terms()), 2, "second id");
        assertEq(agreements.agreementCount(), 2, "agreementCount");
    }

    /// @dev The round ledger reads the partner registry's suspension log from this position: the parties sign
    /// later, and signing needs approval, so no earlier suspension is still in force for them.
    function test_proposeRecordsWhereTheSuspensionLogStands() public {
        assertEq(agreements.suspensionLogStart(propose(terms())), 0, "nothing logged yet");
        address outsider = address(0x0D);
        registerOnly(outsider);
        vm.prank(coordinator);
        partners.suspend(outsider, keccak256("reason"));
        assertEq(agreements.suspensionLogStart(propose(terms())), 1, "one suspension before the proposal");
    }

    function test_proposeStoresStateAndTerms() public {
        IAgreementRegistry.Terms memory t = terms();
        uint256 id = propose(t);
        IAgreementRegistry.AgreementState memory s = stateOf(id);
        assertEq(uint256(s.status), uint256(IAgreementRegistry.AgreementStatus.Proposed), "status");
        assertEq(s.version, 1, "version");
        assertEq(s.signatures, 0, "signatures");
        assertEq(s.proposedAt, block.timestamp, "proposedAt");
        assertEq(s.coordinator, coordinator, "coordinator");
        assertEq(s.termsHash, keccak256(abi.encode(t)), "termsHash");
        assertEq(keccak256(abi.encode(agreements.terms(id))), keccak256(abi.encode(t)), "terms round-trip");
    }

    function test_proposeEmitsAgreementProposedWithFullTerms() public {
        IAgreementRegistry.Terms memory t = terms();
        vm.expectEmit(true, true, true, true);
        emit IAgreementRegistry.AgreementProposed(1, coordinator, keccak256(abi.encode(t)), t);
        propose(t);
    }

    function test_proposeRecordsPartyPositions() public {
        uint256 id = propose(terms());
        for (uint256 i; i < parties.length; ++i) {
            (bool isParty, uint256 index) = agreements.partyIndex(id, parties[i]);
            assertTrue(isParty, "isParty");
            assertEq(index, i, "index");
            assertEq(agreements.partyAt(id, i), parties[i], "partyAt");
        }
        (bool outsider, uint256 none) = agreements.partyIndex(id, rando);
        assertFalse(outsider, "rando is not a party");
        assertEq(none, 0, "rando index");
    }

    function test_proposeRefusesNonCoordinator() public {
        IAgreementRegistry.Terms memory t = terms();
        address[4] memory wrong = wrongCallers();
        for (uint256 i; i < wrong.length; ++i) {
            expectNotCoordinator(wrong[i]);
            vm.prank(wrong[i]);
            agreements.propose(t);
        }
        assertEq(agreements.agreementCount(), 0, "nothing proposed");
    }

    /// @dev Issue 10, item 2: the coordinator named in the terms is the proposer, and no one else.
    function test_proposeRefusesTermsNamingAnotherCoordinator() public {
        IAgreementRegistry.Terms memory t = terms();
        t.coordinator = otherCoordinator();
        vm.expectRevert(
            abi.encodeWithSelector(IAgreementRegistry.AgreementRegistryInvalidCoordinator.selector, t.coordinator)
        );
        propose(t);
    }

    function test_proposeRefusesZeroArbiter() public {
        IAgreementRegistry.Terms memory t = terms();
        t.arbiter = address(0);
        expectRevertWith(IAgreementRegistry.AgreementRegistryZeroArbiter.selector);
        propose(t);
    }

    function test_proposeRefusesZeroMaxSampleCount() public {
        IAgreementRegistry.Terms memory t = terms();
        t.maxSampleCount = 0;
        expectRevertWith(IAgreementRegistry.AgreementRegistryZeroMaxSampleCount.selector);
        propose(t);
    }

    function test_amendRefusesANewCoordinatorWithoutTheRole() public {
        uint256 id = activeId();
        IAgreementRegistry.Terms memory t = terms();
        t.coordinator = rando;
        vm.expectRevert(abi.encodeWithSelector(IAgreementRegistry.AgreementRegistryInvalidCoordinator.selector, rando));
        vm.prank(coordinator);
        agreements.amend(id, t);
    }

    /// @dev A signed amendment can hand the agreement to another coordinator; only then does it act on it.
    function test_amendmentHandsTheAgreementToANewCoordinatorOnceInForce() public {
        uint256 id = activeId();
        address other = otherCoordinator();
        IAgreementRegistry.Terms memory t = terms();
        t.coordinator = other;
        vm.prank(coordinator);
        agreements.amend(id, t);
        expectNotAgreementCoordinator(id, other);
        vm.prank(other);
        agreements.terminate(id, REASON);
        resignAll(id);
        assertEq(stateOf(id).coordinator, other, "new coordinator");
        expectNotAgreementCoordinator(id, coordinator);
        vm.prank(coordinator);
        agreements.terminate(id, REASON);
        vm.prank(other);
        agreements.terminate(id, REASON);
    }

    function test_termsAtRefusesUnknownVersion() public {
        uint256 id = propose(terms());
        vm.expectRevert(abi.encodeWithSelector(IAgreementRegistry.AgreementRegistryUnknownVersion.selector, id, 2));
        agreements.termsAt(id, 2);
        vm.expectRevert(abi.encodeWithSelector(IAgreementRegistry.AgreementRegistryUnknownVersion.selector, id, 0));
        agreements.termsAt(id, 0);
    }

    function test_proposeRefusesNoParties() public {
        IAgreementRegistry.Terms memory t = defaultTerms(new address[](0));
        expectRevertWith(IAgreementRegistry.AgreementRegistryNoParties.selector);
        propose(t);
    }

    function test_proposeAcceptsMaxParties() public {
        address[] memory many = new address[](256);
        for (uint256 i; i < many.length; ++i) {
            many[i] = address(uint160(0x1000 + i));
        }
        uint256 id = propose(defaultTerms(many));
        assertEq(agreements.roundConfig(id).partyCount, 256, "partyCount");
        assertEq(agreements.partyAt(id, 255), address(uint160(0x1000 + 255)), "last party");
    }

    function test_proposeRefusesMoreThanMaxParties() public {
        address[] memory many = new address[](257);
        for (uint256 i; i < many.length; ++i) {
            many[i] = address(uint160(0x1000 + i));
        }
        IAgreementRegistry.Terms memory t = defaultTerms(many);
        vm.expectRevert(abi.encodeWithSelector(IAgreementRegistry.AgreementRegistryTooManyParties.selector, 257, 256));
        propose(t);
    }

    function test_proposeRefusesZeroParty() public {
        IAgreementRegistry.Terms memory t = terms();
        t.parties[1] = address(0);
        vm.expectRevert(abi.encodeWithSelector(IAgreementRegistry.AgreementRegistryZeroParty.selector, 1));
        propose(t);
    }

    function test_proposeRefusesDuplicateParty() public {
        IAgreementRegistry.Terms memory t = terms();
        t.parties[2] = t.parties[0];
        vm.expectRevert(
            abi.encodeWithSelector(IAgreementRegistry.AgreementRegistryDuplicateParty.selector, t.parties[0])
        );
        propose(t);
    }

    function test_proposeRefusesZeroTermsDigest() public {
        IAgreementRegistry.Terms memory t = terms();
        t.termsDigest = bytes32(0);
        expectRevertWith(IAgreementRegistry.AgreementRegistryZeroTermsDigest.selector);
        propose(t);
    }

    function test_proposeRefusesZeroRewardToken() public {
        IAgreementRegistry.Terms memory t = terms();
        t.rewardToken = address(0);
        expectRevertWith(IAgreementRegistry.AgreementRegistryZeroRewardToken.selector);
        propose(t);
    }

    function test_proposeRefusesZeroEpsilonCap() public {
        IAgreementRegistry.Terms memory t = terms();
        t.epsilonCap = 0;
        expectRevertWith(IAgreementRegistry.AgreementRegistryZeroEpsilonCap.selector);
        propose(t);
    }

    function test_proposeRefusesZeroDelta() public {
        IAgreementRegistry.Terms memory t = terms();
        t.delta = 0;
        vm.expectRevert(abi.encodeWithSelector(IAgreementRegistry.AgreementRegistryInvalidDelta.selector, 0));
        propose(t);
    }

    function test_proposeRefusesDeltaOfOne() public {
        IAgreementRegistry.Terms memory t = terms();
        t.delta = 1e18;
        vm.expectRevert(abi.encodeWithSelector(IAgreementRegistry.AgreementRegistryInvalidDelta.selector, 1e18));
        propose(t);
    }

    function test_proposeAcceptsDeltaJustBelowOne() public {
        IAgreementRegistry.Terms memory t = terms();
        t.delta = 1e18 - 1;
        uint256 id = propose(t);
        assertEq(agreements.terms(id).delta, 1e18 - 1, "delta");
    }

    function test_proposeRefusesStartNotBeforeEnd() public {
        IAgreementRegistry.Terms memory t = terms();
        t.start = t.end;
        vm.expectRevert(
            abi.encodeWithSelector(IAgreementRegistry.AgreementRegistryInvalidPeriod.selector, t.start, t.end)
        );
        propose(t);
    }

    function test_proposeRefusesEndNotInFuture() public {
        IAgreementRegistry.Terms memory t = terms();
        t.start = uint64(block.timestamp - 100);
        t.end = uint64(block.timestamp);
        vm.expectRevert(
            abi.encodeWithSelector(IAgreementRegistry.AgreementRegistryInvalidPeriod.selector, t.start, t.end)
        );
        propose(t);
    }

    function test_proposeRefusesZeroMaxRounds() public {
        IAgreementRegistry.Terms memory t = terms();
        t.maxRounds = 0;
        expectRevertWith(IAgreementRegistry.AgreementRegistryZeroMaxRounds.selector);
        propose(t);
    }

    /*//////////////////////////////////////////////////////////////
                                 AMEND
    //////////////////////////////////////////////////////////////*/

    /// @dev Issue 10, item 1: an amendment is a pending proposal; the terms in force stay what was signed.
    function test_amendIsPendingAndChangesNothingInForce() public {
        uint256 id = activeWithPendingCap(2 * EPSILON_ONE);
        IAgreementRegistry.AgreementState memory s = stateOf(id);
        assertEq(uint256(s.status), uint256(IAgreementRegistry.AgreementStatus.Active), "status");
        assertEq(s.version, 2, "version");
        assertEq(s.activeVersion, 1, "version 1 still in force");
        assertEq(s.signatures, 0, "signatures reset");
        IAgreementRegistry.Terms memory t = terms();
        t.epsilonCap = 2 * EPSILON_ONE;
        assertEq(s.termsHash, keccak256(abi.encode(t)), "termsHash");
        assertEq(agreements.terms(id).epsilonCap, 8 * EPSILON_ONE, "old cap in force");
        assertEq(agreements.roundConfig(id).epsilonCap, 8 * EPSILON_ONE, "round config unchanged");
        assertEq(agreements.termsAt(id, 2).epsilonCap, 2 * EPSILON_ONE, "pending version");

        resignAll(id);
        s = stateOf(id);
        assertEq(s.activeVersion, 2, "version 2 in force once every party signed");
        assertEq(agreements.roundConfig(id).epsilonCap, 2 * EPSILON_ONE, "round config follows");
    }

    /// @dev Issue 10, item 1, as the attack: amend during an open round to ten times the reward, then finalize
    /// with it. The round still allocates at most what the parties signed.
    function test_attack_unsignedRewardAmendmentCannotFundARound() public {
        uint256 id = activeId();
        vm.prank(admin);
        token.mint(coordinator, 100 * REWARD_PER_ROUND);
        vm.startPrank(coordinator);
        token.approve(address(vault), 100 * REWARD_PER_ROUND);
        vault.fund(id, 100 * REWARD_PER_ROUND);
        vm.stopPrank();
        uint64 roundId = openRound(id);
        IAgreementRegistry.Terms memory t = terms();
        t.rewardPerRound = 10 * REWARD_PER_ROUND;
        vm.prank(coordinator);
        agreements.amend(id, t);
        vm.warp(ledger.round(id, roundId).deadline + 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IRoundLedger.RoundLedgerPayoutExceedsReward.selector, 10 * REWARD_PER_ROUND, REWARD_PER_ROUND
            )
        );
        vm.prank(coordinator);
        ledger.finalizeRound(id, roundId, keccak256("a"), keccak256("r"), keccak256("root"), 10 * REWARD_PER_ROUND);
    }

    /// @dev Issue 10, item 1, as the attack: push `end` a century out. A party that does not sign still leaves
    /// at the end of the version in force and takes its stake.
    function test_attack_unsignedEndExtensionCannotLockStakes() public {
        uint256 id = activeId();
        IAgreementRegistry.Terms memory t = terms();
        t.end = uint64(block.timestamp + 36500 days);
        vm.prank(coordinator);
        agreements.amend(id, t);
        signAs(parties[1], id); // some sign, party 0 does not
        vm.warp(uint256(terms().end) + 1);
        vm.prank(parties[0]);
        agreements.exit(id);
        vm.prank(parties[0]);
        vault.unstake(id, STAKE);
        assertEq(token.balanceOf(parties[0]), STAKE, "stake back at the signed end");
    }

    /// @dev Issue 10, item 1: a fully signed amendment waits for the open round to close before it applies.
    function test_amendmentComesIntoForceOnlyBetweenRounds() public {
        uint256 id = activeId();
        uint64 roundId = openRound(id);
        IAgreementRegistry.Terms memory t = terms();
        t.epsilonCap = 2 * EPSILON_ONE;
        vm.prank(coordinator);
        agreements.amend(id, t);
        resignAll(id);
        assertFalse(agreements.tryActivate(id), "not while the round is open");
        assertEq(stateOf(id).activeVersion, 1, "version 1 in force");
        finalizeAfterDeadline(id, roundId);
        assertTrue(agreements.tryActivate(id), "in force after the round");
        assertEq(stateOf(id).activeVersion, 2, "version 2 in force");
    }

    /// @dev Issue 10, item 8: an exited party cannot sign a later version, and no version can come into force
    /// once a party has exited, so an exit never outlives the terms it was made under.
    function test_exitedPartyCannotSignAndBlocksLaterVersions() public {
        uint256 id = activeId();
        IAgreementRegistry.Terms memory t = terms();
        t.end = uint64(block.timestamp + 60 days);
        vm.prank(coordinator);
        agreements.amend(id, t);
        signAs(parties[1], id);
        signAs(parties[2], id);
        vm.warp(uint256(terms().end) + 1);
        vm.prank(parties[0]);
        agreements.exit(id);
        vm.expectRevert(
            abi.encodeWithSelector(IAgreementRegistry.AgreementRegistryPartyExited.selector, id, parties[0])
        );
        signAs(parties[0], id);
        assertFalse(agreements.tryActivate(id), "no version after an exit");
        assertEq(stateOf(id).activeVersion, 1, "version 1 stays in force");
    }

    function test_amendEmitsAgreementAmended() public {
        uint256 id = propose(terms());
        IAgreementRegistry.Terms memory t = terms();
        t.termsDigest = keccak256("terms v2");
        vm.expectEmit(true, true, true, true);
        emit IAgreementRegistry.AgreementAmended(id, 2, keccak256(abi.encode(t)), t);
        vm.prank(coordinator);
        agreements.amend(id, t);
    }

    function test_amendLeavesPreviousVersionSignaturesOnRecordOnly() public {
        uint256 id = activeId();
        vm.prank(coordinator);
        agreements.amend(id, terms());
        assertTrue(agreements.hasSigned(id, 1, parties[0]), "signed v1");
        assertFalse(agreements.hasSigned(id, 2, parties[0]), "not signed v2");
        (address missing, bool needsSignature) = agreements.pendingParty(id);
        assertEq(missing, parties[0], "first party must sign again");
        assertTrue(needsSignature, "needs signature");
    }

    function test_amendedAgreementReactivatesWhenAllResignWithStakeHeld() public {
        uint256 id = activeId();
        vm.prank(coordinator);
        agreements.amend(id, terms());
        signAs(parties[0], id);
        signAs(parties[1], id);
        vm.expectEmit(true, true, true, true);
        emit IAgreementRegistry.AgreementActivated(id, 2);
        signAs(parties[2], id);
        assertStatus(id, IAgreementRegistry.AgreementStatus.Active, "active again");
    }

    /// @dev The width of the ledger's epsilon lanes is fixed at the proposal from its cap: 24 bits up to the
    /// largest cap they hold, 32 above.
    function test_proposeFixesTheEpsilonLanesFromTheCap() public {
        IAgreementRegistry.Terms memory t = terms();
        t.epsilonCap = type(uint24).max;
        uint256 narrow = propose(t);
        t.epsilonCap = uint32(type(uint24).max) + 1;
        uint256 wide = propose(t);
        assertEq(stateOf(narrow).epsilonLaneBits, 24, "cap fits 24 bits");
        assertEq(agreements.roundConfig(narrow).epsilonLaneBits, 24, "round config");
        assertEq(stateOf(wide).epsilonLaneBits, 32, "cap past 24 bits");
        assertEq(agreements.roundConfig(wide).epsilonLaneBits, 32, "round config");
        assertEq(stateOf(narrow).partyCount, parties.length, "party count");
        assertEq(stateOf(narrow).epsilonCap, type(uint24).max, "cap of the proposal");
    }

    /// @dev An amendment may not raise the cap past the lanes chosen at the proposal: the ledger could not store it.
    function test_amendRefusesACapPastTheEpsilonLanes() public {
        uint256 id = activeId();
        IAgreementRegistry.Terms memory t = terms();
        t.epsilonCap = uint32(type(uint24).max) + 1;
        vm.expectRevert(
            abi.encodeWithSelector(
                IAgreementRegistry.AgreementRegistryEpsilonCapOverLanes.selector, t.epsilonCap, type(uint24).max
            )
        );
        vm.prank(coordinator);
        agreements.amend(id, t);
        t.epsilonCap = type(uint24).max;
        vm.prank(coordinator);
        agreements.amend(id, t);
        assertEq(stateOf(id).version, 2, "a cap within the lanes is accepted");
    }

    function test_amendAcceptsAnyCapIn32BitLanes() public {
        IAgreementRegistry.Terms memory t = terms();
        t.epsilonCap = uint32(type(uint24).max) + 1;
        uint256 id = propose(t);
        t.epsilonCap = type(uint32).max;
        vm.prank(coordinator);
        agreements.amend(id, t);
        assertEq(stateOf(id).version, 2, "amended");
    }

    /// @dev The copy of the cap that batches read follows the version in force: unchanged while an amendment is
    /// pending, the amendment's once it comes into force.
    function test_batchTermsFollowTheCapOfTheVersionInForce() public {
        uint256 id = activeWithPendingCap(2 * EPSILON_ONE);
        (,,, uint32 cap,) = agreements.batchTerms(id);
        assertEq(cap, 8 * EPSILON_ONE, "pending: the cap in force");
        resignAll(id);
        (,,, cap,) = agreements.batchTerms(id);
        assertEq(cap, 2 * EPSILON_ONE, "in force: the amendment's cap");
        assertEq(stateOf(id).epsilonCap, 2 * EPSILON_ONE, "state copy");
    }

    /// @dev Issue 10, item 2: the coordinator role is not enough; only the agreement's own coordinator amends.
    function test_amendRefusesAnyoneButTheAgreementsCoordinator() public {
        uint256 id = propose(terms());
        IAgreementRegistry.Terms memory t = terms();
        address[5] memory wrong = [admin, auditor, rando, parties[0], otherCoordinator()];
        for (uint256 i; i < wrong.length; ++i) {
            expectNotAgreementCoordinator(id, wrong[i]);
            vm.prank(wrong[i]);
            agreements.amend(id, t);
        }
        assertEq(stateOf(id).version, 1, "version unchanged");
    }

    function test_amendRefusesUnknownAgreement() public {
        IAgreementRegistry.Terms memory t = terms();
        expectUnknown(7);
        vm.prank(coordinator);
        agreements.amend(7, t);
    }

    function test_amendRefusesTerminatedAgreement() public {
        uint256 id = activeId();
        terminateAs(id);
        IAgreementRegistry.Terms memory t = terms();
        expectInvalidStatus(id, IAgreementRegistry.AgreementStatus.Terminated);
        vm.prank(coordinator);
        agreements.amend(id, t);
    }

    function test_amendRefusesMalformedTerms() public {
        uint256 id = propose(terms());
        IAgreementRegistry.Terms memory t = terms();
        t.epsilonCap = 0;
        expectRevertWith(IAgreementRegistry.AgreementRegistryZeroEpsilonCap.selector);
        vm.prank(coordinator);
        agreements.amend(id, t);
    }

    function test_amendRefusesAddedParty() public {
        uint256 id = propose(terms());
        address[] memory more = new address[](4);
        for (uint256 i; i < 3; ++i) {
            more[i] = parties[i];
        }
        more[3] = partnerAddr(3);
        IAgreementRegistry.Terms memory t = defaultTerms(more);
        vm.expectRevert(abi.encodeWithSelector(IAgreementRegistry.AgreementRegistryPartiesChanged.selector, id));
        vm.prank(coordinator);
        agreements.amend(id, t);
    }

    function test_amendRefusesReplacedParty() public {
        uint256 id = propose(terms());
        IAgreementRegistry.Terms memory t = terms();
        t.parties[2] = partnerAddr(3);
        vm.expectRevert(abi.encodeWithSelector(IAgreementRegistry.AgreementRegistryPartiesChanged.selector, id));
        vm.prank(coordinator);
        agreements.amend(id, t);
    }

    /// @dev Re-seating parties would hand one party another's privacy budget.
    function test_amendRefusesReorderedParties() public {
        uint256 id = propose(terms());
        IAgreementRegistry.Terms memory t = terms();
        (t.parties[0], t.parties[1]) = (t.parties[1], t.parties[0]);
        vm.expectRevert(abi.encodeWithSelector(IAgreementRegistry.AgreementRegistryPartiesChanged.selector, id));
        vm.prank(coordinator);
        agreements.amend(id, t);
    }

    function test_amendRefusesRewardTokenChange() public {
        uint256 id = propose(terms());
        IAgreementRegistry.Terms memory t = terms();
        t.rewardToken = address(0x70CE);
        vm.expectRevert(abi.encodeWithSelector(IAgreementRegistry.AgreementRegistryRewardTokenChanged.selector, id));
        vm.prank(coordinator);
        agreements.amend(id, t);
    }

    /*//////////////////////////////////////////////////////////////
                                  SIGN
    //////////////////////////////////////////////////////////////*/

    function test_signRecordsSignatureOfCurrentVersion() public {
        uint256 id = propose(terms());
        signAs(parties[1], id);
        assertTrue(agreements.hasSigned(id, 1, parties[1]), "signed");
        assertFalse(agreements.hasSigned(id, 1, parties[0]), "others not signed");
        assertEq(stateOf(id).signatures, 1, "signatures");
        assertStatus(id, IAgreementRegistry.AgreementStatus.Proposed, "still proposed");
    }

    function test_signEmitsAgreementSignedNotRelayed() public {
        uint256 id = propose(terms());
        vm.expectEmit(true, true, true, true);
        emit IAgreementRegistry.AgreementSigned(id, 1, parties[0], false);
        signAs(parties[0], id);
    }

    function test_lastSignatureActivatesAgreementWithoutStake() public {
        IAgreementRegistry.Terms memory t = terms();
        t.requiredStake = 0;
        uint256 id = propose(t);
        signAs(parties[0], id);
        signAs(parties[1], id);
        vm.expectEmit(true, true, true, true);
        emit IAgreementRegistry.AgreementActivated(id, 1);
        signAs(parties[2], id);
        assertStatus(id, IAgreementRegistry.AgreementStatus.Active, "active");
    }

    function test_lastSignatureDoesNotActivateWhileStakeMissing() public {
        uint256 id = propose(terms());
        for (uint256 i; i < parties.length; ++i) {
            signAs(parties[i], id);
        }
        assertStatus(id, IAgreementRegistry.AgreementStatus.Proposed, "proposed");
        (address missing, bool needsSignature) = agreements.pendingParty(id);
        assertEq(missing, parties[0], "first unstaked party");
        assertFalse(needsSignature, "needs stake, not signature");
    }

    function test_lastStakeActivatesSignedAgreement() public {
        uint256 id = signedButUnderstaked();
        vm.prank(admin);
        token.mint(parties[2], STAKE);
        vm.prank(parties[2]);
        token.approve(address(vault), STAKE);
        vmx.expectEmit(true, true, true, true, address(agreements));
        emit IAgreementRegistry.AgreementActivated(id, 1);
        vm.prank(parties[2]);
        vault.stake(id, STAKE);
        assertStatus(id, IAgreementRegistry.AgreementStatus.Active, "active");
    }

    function test_stakeBelowRequiredDoesNotActivate() public {
        uint256 id = signedButUnderstaked();
        stakeAs(parties[2], id, STAKE - 1);
        assertStatus(id, IAgreementRegistry.AgreementStatus.Proposed, "proposed");
        (address missing, bool needsSignature) = agreements.pendingParty(id);
        assertEq(missing, parties[2], "under-staked party");
        assertFalse(needsSignature, "needs stake");
    }

    function test_signRefusesUnknownAgreement() public {
        expectUnknown(5);
        signAs(parties[0], 5);
    }

    function test_signRefusesActiveAgreementWithNothingPending() public {
        uint256 id = activeId();
        vm.expectRevert(abi.encodeWithSelector(IAgreementRegistry.AgreementRegistryNothingToSign.selector, id));
        signAs(parties[0], id);
    }

    function test_signRefusesTerminatedAgreement() public {
        uint256 id = propose(terms());
        terminateAs(id);
        expectInvalidStatus(id, IAgreementRegistry.AgreementStatus.Terminated);
        signAs(parties[0], id);
    }

    function test_signAcceptedAtEnd() public {
        uint256 id = propose(terms());
        vm.warp(agreements.terms(id).end);
        signAs(parties[0], id);
        assertTrue(agreements.hasSigned(id, 1, parties[0]), "signed at end");
    }

    function test_signRefusesAfterEnd() public {
        uint256 id = propose(terms());
        uint64 end = agreements.terms(id).end;
        vm.warp(uint256(end) + 1);
        vm.expectRevert(abi.encodeWithSelector(IAgreementRegistry.AgreementRegistryAgreementEnded.selector, id, end));
        signAs(parties[0], id);
    }

    function test_signRefusesNonParty() public {
        uint256 id = propose(terms());
        registerAndApprove(partnerAddr(7));
        vm.expectRevert(
            abi.encodeWithSelector(IAgreementRegistry.AgreementRegistryNotParty.selector, id, partnerAddr(7))
        );
        signAs(partnerAddr(7), id);
    }

    function test_signRefusesPendingPartner() public {
        address pending = partnerAddr(5);
        registerOnly(pending);
        parties.push(pending);
        uint256 id = propose(terms());
        vm.expectRevert(
            abi.encodeWithSelector(IAgreementRegistry.AgreementRegistryPartnerNotApproved.selector, pending)
        );
        signAs(pending, id);
    }

    function test_signRefusesSuspendedPartner() public {
        uint256 id = propose(terms());
        vm.prank(coordinator);
        partners.suspend(parties[1], REASON);
        vm.expectRevert(
            abi.encodeWithSelector(IAgreementRegistry.AgreementRegistryPartnerNotApproved.selector, parties[1])
        );
        signAs(parties[1], id);
    }

    function test_signRefusesSecondSignatureOfSameVersion() public {
        uint256 id = propose(terms());
        signAs(parties[0], id);
        vm.expectRevert(
            abi.encodeWithSelector(IAgreementRegistry.AgreementRegistryAlreadySigned.selector, id, 1, parties[0])
        );
        signAs(parties[0], id);
    }

    /*//////////////////////////////////////////////////////////////
                               SIGN BY SIG
    //////////////////////////////////////////////////////////////*/

    function test_signingDigestFollowsEip712() public {
        uint256 id = propose(terms());
        uint256 deadline = block.timestamp + 1 hours;
        assertEq(
            agreements.signingDigest(id, parties[0], deadline),
            signAgreementDigest(id, parties[0], 0, deadline, block.chainid),
            "digest"
        );
    }

    function test_signingDigestRefusesUnknownAgreement() public {
        expectUnknown(3);
        agreements.signingDigest(3, parties[0], block.timestamp);
    }

    function test_signBySigRecordsRelayedSignature() public {
        uint256 id = propose(terms());
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = sigOf(0, id, deadline);
        vm.expectEmit(true, true, true, true);
        emit IAgreementRegistry.AgreementSigned(id, 1, parties[0], true);
        vm.prank(rando);
        agreements.signBySig(id, parties[0], deadline, sig);
        assertTrue(agreements.hasSigned(id, 1, parties[0]), "signed");
        assertEq(agreements.nonces(parties[0]), 1, "nonce consumed");
    }

    function test_signBySigCanCompleteActivation() public {
        IAgreementRegistry.Terms memory t = terms();
        t.requiredStake = 0;
        uint256 id = propose(t);
        signAs(parties[0], id);
        signAs(parties[1], id);
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = sigOf(2, id, deadline);
        vm.expectEmit(true, true, true, true);
        emit IAgreementRegistry.AgreementActivated(id, 1);
        agreements.signBySig(id, parties[2], deadline, sig);
    }

    function test_signBySigAcceptsDeadlineEqualToNow() public {
        uint256 id = propose(terms());
        bytes memory sig = sigOf(0, id, block.timestamp);
        agreements.signBySig(id, parties[0], block.timestamp, sig);
        assertTrue(agreements.hasSigned(id, 1, parties[0]), "signed");
    }

    function test_signBySigRefusesExpiredDeadline() public {
        uint256 id = propose(terms());
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = sigOf(0, id, deadline);
        vm.warp(deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(IAgreementRegistry.AgreementRegistryExpiredSignature.selector, deadline));
        agreements.signBySig(id, parties[0], deadline, sig);
    }

    /// @dev Were the nonce not consumed, the replay would fail later and differently, with AlreadySigned.
    function test_signBySigRefusesReplayedSignature() public {
        uint256 id = propose(terms());
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = sigOf(0, id, deadline);
        agreements.signBySig(id, parties[0], deadline, sig);
        expectInvalidSignature(parties[0]);
        agreements.signBySig(id, parties[0], deadline, sig);
    }

    function test_signBySigRefusesSignatureForAnotherAgreement() public {
        uint256 first = propose(terms());
        uint256 second = propose(terms());
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = sigOf(0, first, deadline);
        expectInvalidSignature(parties[0]);
        agreements.signBySig(second, parties[0], deadline, sig);
    }

    function test_signBySigRefusesSignatureOfPreviousVersion() public {
        uint256 id = propose(terms());
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = sigOf(0, id, deadline);
        IAgreementRegistry.Terms memory t = terms();
        t.epsilonCap = EPSILON_ONE;
        vm.prank(coordinator);
        agreements.amend(id, t);
        expectInvalidSignature(parties[0]);
        agreements.signBySig(id, parties[0], deadline, sig);
    }

    /// @dev An amendment may re-issue identical terms (same terms hash); a signature made for the earlier version
    /// and never relayed must still not count for the new one.
    function test_signBySigRefusesUnusedSignatureOfPreviousVersionWithSameTerms() public {
        IAgreementRegistry.Terms memory t = terms();
        uint256 id = propose(t);
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = sigOf(0, id, deadline);
        vm.prank(coordinator);
        agreements.amend(id, t);
        assertEq(stateOf(id).termsHash, keccak256(abi.encode(t)), "same terms hash");
        expectInvalidSignature(parties[0]);
        agreements.signBySig(id, parties[0], deadline, sig);
    }

    function test_signBySigRefusesWrongNonce() public {
        uint256 id = propose(terms());
        uint256 deadline = block.timestamp + 1 hours;
        bytes32 digest = signAgreementDigest(id, parties[0], 1, deadline, block.chainid);
        bytes memory sig = signDigest(partnerKey(0), digest);
        expectInvalidSignature(parties[0]);
        agreements.signBySig(id, parties[0], deadline, sig);
    }

    function test_signBySigRefusesDifferentDeadlineThanSigned() public {
        uint256 id = propose(terms());
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = sigOf(0, id, deadline);
        expectInvalidSignature(parties[0]);
        agreements.signBySig(id, parties[0], deadline + 1, sig);
    }

    function test_signBySigRefusesSignatureMadeForAnotherChain() public {
        uint256 id = propose(terms());
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = sigOf(0, id, deadline);
        vm.chainId(block.chainid + 1);
        expectInvalidSignature(parties[0]);
        agreements.signBySig(id, parties[0], deadline, sig);
    }

    function test_signBySigFollowsChainIdOfDomain() public {
        uint256 id = propose(terms());
        vm.chainId(10);
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = signDigest(partnerKey(0), signAgreementDigest(id, parties[0], 0, deadline, 10));
        agreements.signBySig(id, parties[0], deadline, sig);
        assertTrue(agreements.hasSigned(id, 1, parties[0]), "signed on chain 10");
    }

    function test_signBySigRefusesAnotherSigner() public {
        uint256 id = propose(terms());
        uint256 deadline = block.timestamp + 1 hours;
        bytes32 digest = signAgreementDigest(id, parties[0], 0, deadline, block.chainid);
        bytes memory sig = signDigest(partnerKey(1), digest);
        expectInvalidSignature(parties[0]);
        agreements.signBySig(id, parties[0], deadline, sig);
    }

    function test_signBySigRefusesMalformedSignature() public {
        uint256 id = propose(terms());
        expectInvalidSignature(parties[0]);
        agreements.signBySig(id, parties[0], block.timestamp, hex"deadbeef");
    }

    function test_signBySigRefusesSuspendedPartnerEvenWithValidSignature() public {
        uint256 id = propose(terms());
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = sigOf(0, id, deadline);
        vm.prank(coordinator);
        partners.suspend(parties[0], REASON);
        vm.expectRevert(
            abi.encodeWithSelector(IAgreementRegistry.AgreementRegistryPartnerNotApproved.selector, parties[0])
        );
        agreements.signBySig(id, parties[0], deadline, sig);
    }

    function test_signBySigRefusesPartyThatSignedDirectly() public {
        uint256 id = propose(terms());
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = sigOf(0, id, deadline);
        signAs(parties[0], id);
        vm.expectRevert(
            abi.encodeWithSelector(IAgreementRegistry.AgreementRegistryAlreadySigned.selector, id, 1, parties[0])
        );
        agreements.signBySig(id, parties[0], deadline, sig);
        assertEq(agreements.nonces(parties[0]), 0, "nonce not consumed by a refused signature");
    }

    /// @dev Any key other than the party's own is refused.
    function testFuzz_signBySigRefusesAnyOtherKey(uint256 key) public {
        key = bound(key, 1, 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364140);
        vm.assume(key != partnerKey(0));
        uint256 id = propose(terms());
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = signDigest(key, agreements.signingDigest(id, parties[0], deadline));
        expectInvalidSignature(parties[0]);
        agreements.signBySig(id, parties[0], deadline, sig);
    }

    /*//////////////////////////////////////////////////////////////
                          ERC-1271 SMART WALLETS
    //////////////////////////////////////////////////////////////*/

    function walletParty(uint256 ownerKey) internal returns (SmartWallet wallet) {
        address owner = vm.addr(ownerKey);
        wallet = new SmartWallet(owner);
        vm.prank(owner);
        wallet.execute(
            address(partners),
            abi.encodeCall(IPartnerRegistry.register, (keccak256("wallet profile"), keccak256("wallet key")))
        );
        vm.prank(coordinator);
        partners.approve(address(wallet));
    }

    function test_signBySigAcceptsSmartWalletSignatureOfItsOwner() public {
        uint256 ownerKey = 0x0A7E;
        SmartWallet wallet = walletParty(ownerKey);
        parties.push(address(wallet));
        uint256 id = propose(terms());
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = signDigest(ownerKey, agreements.signingDigest(id, address(wallet), deadline));
        vm.expectEmit(true, true, true, true);
        emit IAgreementRegistry.AgreementSigned(id, 1, address(wallet), true);
        agreements.signBySig(id, address(wallet), deadline, sig);
        assertEq(agreements.nonces(address(wallet)), 1, "wallet nonce consumed");
    }

    function test_signBySigRefusesSmartWalletSignatureOfAnotherKey() public {
        SmartWallet wallet = walletParty(0x0A7E);
        parties.push(address(wallet));
        uint256 id = propose(terms());
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = signDigest(0xB0B, agreements.signingDigest(id, address(wallet), deadline));
        expectInvalidSignature(address(wallet));
        agreements.signBySig(id, address(wallet), deadline, sig);
    }

    function test_smartWalletCanSignDirectlyThroughExecute() public {
        uint256 ownerKey = 0x0A7E;
        SmartWallet wallet = walletParty(ownerKey);
        parties.push(address(wallet));
        uint256 id = propose(terms());
        vm.prank(vm.addr(ownerKey));
        wallet.execute(address(agreements), abi.encodeCall(IAgreementRegistry.sign, (id)));
        assertTrue(agreements.hasSigned(id, 1, address(wallet)), "signed");
    }

    /*//////////////////////////////////////////////////////////////
                              TRY ACTIVATE
    //////////////////////////////////////////////////////////////*/

    function test_tryActivateRefusesUnknownAgreement() public {
        expectUnknown(9);
        agreements.tryActivate(9);
    }

    function test_tryActivateReturnsFalseAndEmitsNothingWhileSignatureMissing() public {
        uint256 id = propose(terms());
        signAs(parties[0], id);
        stakeAs(parties[0], id, STAKE);
        recordLogs();
        assertFalse(agreements.tryActivate(id), "not active");
        assertNoLogs("no event");
        (address missing, bool needsSignature) = agreements.pendingParty(id);
        assertEq(missing, parties[1], "second party");
        assertTrue(needsSignature, "needs signature");
    }

    function test_tryActivateReturnsFalseWhileStakeMissing() public {
        uint256 id = signedButUnderstaked();
        recordLogs();
        assertFalse(agreements.tryActivate(id), "not active");
        assertNoLogs("no event");
        assertStatus(id, IAgreementRegistry.AgreementStatus.Proposed, "proposed");
    }

    function test_tryActivateReturnsTrueForActiveAgreement() public {
        uint256 id = activeId();
        recordLogs();
        assertTrue(agreements.tryActivate(id), "active");
        assertNoLogs("no second activation event");
    }

    function test_tryActivateReturnsFalseForTerminatedAgreement() public {
        uint256 id = activeId();
        terminateAs(id);
        assertFalse(agreements.tryActivate(id), "terminated is not active");
        assertStatus(id, IAgreementRegistry.AgreementStatus.Terminated, "stays terminated");
    }

    function test_pendingPartyIsNoneForActiveAgreement() public {
        uint256 id = activeId();
        (address missing, bool needsSignature) = agreements.pendingParty(id);
        assertEq(missing, address(0), "nobody");
        assertFalse(needsSignature, "no signature needed");
    }

    /// @dev Signatures (which must come by the end) and stakes (which may come later) only activate an agreement
    /// that has not ended: an agreement activated after its end could never run a round.
    function test_lastStakeAfterEndDoesNotActivate() public {
        uint256 id = signedButUnderstaked();
        vm.warp(uint256(agreements.terms(id).end) + 1);
        stakeAs(parties[2], id, STAKE);
        assertStatus(id, IAgreementRegistry.AgreementStatus.Proposed, "still proposed");
        assertFalse(agreements.tryActivate(id), "tryActivate after end");
    }

    function test_stakesArrivingOutOfOrderStillActivate() public {
        uint256 id = propose(terms());
        for (uint256 i; i < parties.length; ++i) {
            signAs(parties[i], id);
        }
        stakeAs(parties[2], id, STAKE);
        stakeAs(parties[1], id, STAKE);
        assertStatus(id, IAgreementRegistry.AgreementStatus.Proposed, "first party still missing");
        stakeAs(parties[0], id, STAKE);
        assertStatus(id, IAgreementRegistry.AgreementStatus.Active, "active");
    }

    /// @dev Activation remembers which leading parties it found staked. A stake slashed after that (an upheld
    /// challenge from an earlier version) must still stop activation: every party's stake is checked again
    /// when the last missing stake arrives.
    function test_slashedStakeOfAlreadyCheckedPartyBlocksActivation() public {
        uint256 id = activeId();
        // Party 0 submits in round 1, is challenged, and the challenge is upheld.
        uint64 roundId = openRound(id);
        submitAs(parties[0], id, roundId, EPSILON_ONE);
        vm.prank(auditor);
        uint256 challengeId = ledger.challenge(id, roundId, parties[0], keccak256("evidence"));
        vm.prank(arbiter);
        ledger.resolveChallenge(challengeId, true, keccak256("ruling"));
        finalizeAfterDeadline(id, roundId);

        // Version 2 doubles the stake. Party 0 tops up first, so activation records it as staked.
        IAgreementRegistry.Terms memory t = agreements.terms(id);
        t.requiredStake = 2 * STAKE;
        vm.prank(coordinator);
        agreements.amend(id, t);
        resignAll(id);
        stakeAs(parties[0], id, STAKE);
        (address missing,) = agreements.pendingParty(id);
        assertEq(missing, parties[1], "party 0 counted as staked");

        // The dispute window ends and party 0's whole stake is slashed; the others top up.
        vm.warp(block.timestamp + DISPUTE_WINDOW + 1);
        vault.slash(challengeId);
        assertEq(vault.stakeOf(id, parties[0]), 0, "slashed");
        stakeAs(parties[1], id, STAKE);
        stakeAs(parties[2], id, STAKE);

        assertEq(stateOf(id).activeVersion, 1, "version 2 not in force with an unstaked party");
        (missing,) = agreements.pendingParty(id);
        assertEq(missing, parties[0], "party 0 lacks stake");
        stakeAs(parties[0], id, 2 * STAKE);
        assertEq(stateOf(id).activeVersion, 2, "version 2 in force once restaked");
    }

    /// @dev Without a vault no stake can be proven, so an agreement that requires one never activates.
    function test_agreementRequiringStakeCannotActivateWithoutVault() public {
        AgreementRegistry fresh = new AgreementRegistry(partners);
        vm.prank(coordinator);
        uint256 id = fresh.propose(terms());
        for (uint256 i; i < parties.length; ++i) {
            vm.prank(parties[i]);
            fresh.sign(id);
        }
        assertFalse(fresh.tryActivate(id), "not active");
        (address missing, bool needsSignature) = fresh.pendingParty(id);
        assertEq(missing, parties[0], "first party lacks stake");
        assertFalse(needsSignature, "needs stake");
    }

    /*//////////////////////////////////////////////////////////////
                               TERMINATE
    //////////////////////////////////////////////////////////////*/

    function test_terminateEndsActiveAgreement() public {
        uint256 id = activeId();
        vm.expectEmit(true, true, true, true);
        emit IAgreementRegistry.AgreementTerminated(id, coordinator, REASON);
        terminateAs(id);
        assertStatus(id, IAgreementRegistry.AgreementStatus.Terminated, "terminated");
    }

    function test_terminateEndsProposedAgreement() public {
        uint256 id = propose(terms());
        terminateAs(id);
        assertStatus(id, IAgreementRegistry.AgreementStatus.Terminated, "terminated");
    }

    /// @dev Issue 10, item 2: another holder of the coordinator role cannot terminate someone else's agreement.
    function test_terminateRefusesAnyoneButTheAgreementsCoordinator() public {
        uint256 id = activeId();
        address[5] memory wrong = [admin, auditor, rando, parties[0], otherCoordinator()];
        for (uint256 i; i < wrong.length; ++i) {
            expectNotAgreementCoordinator(id, wrong[i]);
            vm.prank(wrong[i]);
            agreements.terminate(id, REASON);
        }
        assertStatus(id, IAgreementRegistry.AgreementStatus.Active, "still active");
    }

    function test_terminateRefusesUnknownAgreement() public {
        expectUnknown(4);
        vm.prank(coordinator);
        agreements.terminate(4, REASON);
    }

    function test_terminateRefusesTerminatedAgreement() public {
        uint256 id = propose(terms());
        terminateAs(id);
        expectInvalidStatus(id, IAgreementRegistry.AgreementStatus.Terminated);
        terminateAs(id);
    }

    /*//////////////////////////////////////////////////////////////
                                  EXIT
    //////////////////////////////////////////////////////////////*/

    function test_exitRecordsPartyLeavingAfterEnd() public {
        uint256 id = activeId();
        vm.warp(uint256(agreements.terms(id).end) + 1);
        vm.expectEmit(true, true, true, true);
        emit IAgreementRegistry.PartyExited(id, parties[1]);
        vm.prank(parties[1]);
        agreements.exit(id);
        assertTrue(agreements.hasExited(id, parties[1]), "exited");
        assertFalse(agreements.hasExited(id, parties[0]), "others stay");
    }

    function test_exitRefusesUnknownAgreement() public {
        expectUnknown(6);
        vm.prank(parties[0]);
        agreements.exit(6);
    }

    function test_exitRefusesNonParty() public {
        uint256 id = activeId();
        vm.warp(uint256(agreements.terms(id).end) + 1);
        vm.expectRevert(abi.encodeWithSelector(IAgreementRegistry.AgreementRegistryNotParty.selector, id, rando));
        vm.prank(rando);
        agreements.exit(id);
    }

    function test_exitRefusesAtEnd() public {
        uint256 id = activeId();
        uint64 end = agreements.terms(id).end;
        vm.warp(end);
        vm.expectRevert(abi.encodeWithSelector(IAgreementRegistry.AgreementRegistryNotEnded.selector, id, end));
        vm.prank(parties[0]);
        agreements.exit(id);
    }

    function test_exitRefusesSecondExit() public {
        uint256 id = activeId();
        vm.warp(uint256(agreements.terms(id).end) + 1);
        vm.prank(parties[0]);
        agreements.exit(id);
        vm.expectRevert(
            abi.encodeWithSelector(IAgreementRegistry.AgreementRegistryAlreadyExited.selector, id, parties[0])
        );
        vm.prank(parties[0]);
        agreements.exit(id);
    }

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    function test_termsRefusesUnknownAgreement() public {
        expectUnknown(1);
        agreements.terms(1);
    }

    function test_agreementStateRefusesUnknownAgreement() public {
        expectUnknown(1);
        agreements.agreementState(1);
    }

    function test_roundConfigMirrorsTermsAndState() public {
        IAgreementRegistry.Terms memory t = terms();
        uint256 id = activate(t);
        IAgreementRegistry.RoundConfig memory c = agreements.roundConfig(id);
        assertEq(uint256(c.status), uint256(IAgreementRegistry.AgreementStatus.Active), "status");
        assertEq(c.version, 1, "version");
        assertEq(c.partyCount, 3, "partyCount");
        assertEq(c.epsilonCap, t.epsilonCap, "epsilonCap");
        assertEq(c.maxRounds, t.maxRounds, "maxRounds");
        assertEq(c.start, t.start, "start");
        assertEq(c.end, t.end, "end");
        assertEq(c.rewardPerRound, t.rewardPerRound, "rewardPerRound");
        assertEq(c.rewardToken, t.rewardToken, "rewardToken");
    }

    /// @dev The ledger and the vault tell unknown agreements apart by this status, so it must not revert.
    function test_roundConfigOfUnknownAgreementHasStatusNone() public view {
        IAgreementRegistry.RoundConfig memory c = agreements.roundConfig(42);
        assertEq(uint256(c.status), uint256(IAgreementRegistry.AgreementStatus.None), "status");
        assertEq(c.partyCount, 0, "partyCount");
    }

    function test_partyAtRefusesOutOfRangeIndex() public {
        uint256 id = propose(terms());
        vm.expectRevert(abi.encodeWithSignature("Panic(uint256)", 0x32));
        agreements.partyAt(id, 3);
    }

    function test_hashTermsIsKeccakOfAbiEncodedTerms() public view {
        IAgreementRegistry.Terms memory t = terms();
        assertEq(agreements.hashTerms(t), keccak256(abi.encode(t)), "hash");
    }

    function test_hashTermsDiffersForEveryField() public view {
        IAgreementRegistry.Terms memory t = terms();
        bytes32 base = agreements.hashTerms(t);
        t.delta += 1;
        assertTrue(agreements.hashTerms(t) != base, "delta is hashed");
        t = terms();
        t.maxRounds += 1;
        assertTrue(agreements.hashTerms(t) != base, "maxRounds is hashed");
        t = terms();
        t.payoutRule = IAgreementRegistry.PayoutRule.Equal;
        assertTrue(agreements.hashTerms(t) != base, "payoutRule is hashed");
    }
}
