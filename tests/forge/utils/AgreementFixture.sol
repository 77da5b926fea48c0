// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Fixture} from "./Fixture.sol";
import {IAgreementRegistry} from "../../../interfaces/IAgreementRegistry.sol";

/// @dev Cheatcodes used only by the agreement, partner and budget tests. Declared apart from `Vm` so that two
/// test authors appending to `Vm.sol` cannot declare the same function twice.
interface VmExtra {
    struct Log {
        bytes32[] topics;
        bytes data;
        address emitter;
    }

    function expectEmit(bool checkTopic1, bool checkTopic2, bool checkTopic3, bool checkData, address emitter) external;
    function recordLogs() external;
    function getRecordedLogs() external returns (Log[] memory logs);
}

/// @dev The Fixture plus the assertions and factories that agreement-level tests share: approved partners
/// without an agreement, agreements on custom terms, EIP-712 signatures, and packed batch entries.
abstract contract AgreementFixture is Fixture {
    VmExtra internal constant vmx = VmExtra(address(uint160(uint256(keccak256("hevm cheat code")))));

    bytes32 internal constant EIP712_DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");

    /*//////////////////////////////////////////////////////////////
                               ASSERTIONS
    //////////////////////////////////////////////////////////////*/

    function assertEq(address left, address right, string memory what) internal pure {
        if (left != right) revert AssertionFailed(what, uint160(left), uint160(right));
    }

    function assertEq(bytes32 left, bytes32 right, string memory what) internal pure {
        if (left != right) revert AssertionFailed(what, uint256(left), uint256(right));
    }

    function assertEq(bool left, bool right, string memory what) internal pure {
        if (left != right) revert AssertionFailed(what, left ? 1 : 0, right ? 1 : 0);
    }

    function assertFalse(bool condition, string memory what) internal pure {
        if (condition) revert AssertionFailed(what, 1, 0);
    }

    /// @dev Starts recording; pair with {assertNoLogs} to check that a call emitted nothing.
    function recordLogs() internal {
        vmx.recordLogs();
    }

    function assertNoLogs(string memory what) internal {
        assertEq(vmx.getRecordedLogs().length, 0, what);
    }

    /*//////////////////////////////////////////////////////////////
                               FACTORIES
    //////////////////////////////////////////////////////////////*/

    /// @dev Registers and approves the first `n` key-backed partners and returns their addresses.
    function approvedPartners(uint256 n) internal returns (address[] memory parties) {
        parties = new address[](n);
        for (uint256 i; i < n; ++i) {
            parties[i] = partnerAddr(i);
            registerAndApprove(parties[i]);
        }
    }

    /// @dev Registers `partner` and leaves it pending.
    function registerOnly(address partner) internal {
        vm.prank(partner);
        partners.register(keccak256(abi.encode("profile", partner)), keccak256(abi.encode("x25519", partner)));
    }

    function propose(IAgreementRegistry.Terms memory t) internal returns (uint256 id) {
        vm.prank(coordinator);
        id = agreements.propose(t);
    }

    function signAs(address party, uint256 id) internal {
        vm.prank(party);
        agreements.sign(id);
    }

    /// @dev Mints and stakes `amount` for `party`.
    function stakeAs(address party, uint256 id, uint256 amount) internal {
        vm.prank(admin);
        token.mint(party, amount);
        vm.startPrank(party);
        token.approve(address(vault), amount);
        vault.stake(id, amount);
        vm.stopPrank();
    }

    /// @dev Proposes `t` (whose parties are approved already), and has every party sign and stake.
    function activate(IAgreementRegistry.Terms memory t) internal returns (uint256 id) {
        id = propose(t);
        for (uint256 i; i < t.parties.length; ++i) {
            signAs(t.parties[i], id);
            if (t.requiredStake != 0) stakeAs(t.parties[i], id, t.requiredStake);
        }
    }

    /// @dev The Active agreement's current version, re-signed by every party after an amendment.
    function resignAll(uint256 id) internal {
        address[] memory parties = agreements.terms(id).parties;
        for (uint256 i; i < parties.length; ++i) {
            signAs(parties[i], id);
        }
    }

    function openRound(uint256 id) internal returns (uint64 roundId) {
        vm.prank(coordinator);
        roundId = ledger.openRound(id, keccak256("model"), uint64(block.timestamp + 1 days), keccak256("eval"));
    }

    function submitAs(address party, uint256 id, uint64 roundId, uint32 epsilon) internal {
        vm.prank(party);
        ledger.submitUpdate(id, roundId, keccak256("envelope"), keccak256("manifest"), epsilon, 100);
    }

    function commitBatchAs(uint256 id, uint64 roundId, bytes memory entries) internal {
        vm.prank(coordinator);
        ledger.commitBatch(id, roundId, keccak256("root"), keccak256("batch document"), entries);
    }

    /// @dev Closes `roundId` after its deadline, with no payouts.
    function finalizeAfterDeadline(uint256 id, uint64 roundId) internal {
        vm.warp(ledger.round(id, roundId).deadline + 1);
        vm.prank(coordinator);
        ledger.finalizeRound(id, roundId, keccak256("aggregate"), keccak256("report"), bytes32(0), 0);
    }

    /// @dev One 6-byte batch entry: uint16 party index, uint32 cumulative epsilon, big-endian.
    function entry(uint256 index, uint32 epsilon) internal pure returns (bytes memory) {
        return abi.encodePacked(uint16(index), epsilon);
    }

    /*//////////////////////////////////////////////////////////////
                                EIP-712
    //////////////////////////////////////////////////////////////*/

    /// @dev The agreement registry's domain separator computed here from the EIP-712 definition, so that the
    /// tests do not take the contract's own digest on trust.
    function agreementDomainSeparator(uint256 chainId) internal view returns (bytes32) {
        return keccak256(
            abi.encode(
                EIP712_DOMAIN_TYPEHASH,
                keccak256("LeptonAgreementRegistry"),
                keccak256("1"),
                chainId,
                address(agreements)
            )
        );
    }

    function signAgreementDigest(uint256 id, address party, uint256 nonce, uint256 deadline, uint256 chainId)
        internal
        view
        returns (bytes32)
    {
        IAgreementRegistry.AgreementState memory state = agreements.agreementState(id);
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256(
                    "SignAgreement(uint256 agreementId,uint32 version,bytes32 termsHash,address party,uint256 nonce,uint256 deadline)"
                ),
                id,
                state.version,
                state.termsHash,
                party,
                nonce,
                deadline
            )
        );
        return keccak256(abi.encodePacked("\x19\x01", agreementDomainSeparator(chainId), structHash));
    }

    function signDigest(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }
}
