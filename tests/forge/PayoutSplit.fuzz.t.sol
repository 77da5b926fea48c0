// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {LedgerFixture} from "./utils/Fixture.sol";
import {Merkle} from "./utils/Merkle.sol";
import {IRewardVault} from "../../interfaces/IRewardVault.sol";
import {IAgreementRegistry} from "../../interfaces/IAgreementRegistry.sol";

/// @dev Random splits of a round's payout total into 1..16 leaves, with amounts up to the uint256 bounds: every
/// leaf claims exactly its amount with its proof, the claims add up to the total, and nothing is paid twice or
/// beyond the total.
contract PayoutSplitFuzzTest is LedgerFixture {
    uint256 internal constant MAX_LEAVES = 16;

    address[] internal everyone;
    uint256 internal id;

    struct Split {
        uint256 id;
        uint64 round;
        uint256 total;
        address[] who;
        uint256[] amounts;
        bytes32[] leaves;
    }

    function setUp() public override {
        super.setUp();
        everyone = approvedParties(0, MAX_LEAVES);
        // No reward cap worth speaking of and no stake: the payouts under test can reach 2^256 - 1.
        IAgreementRegistry.Terms memory t = defaultTerms(everyone);
        t.rewardPerRound = type(uint256).max;
        t.requiredStake = 0;
        id = proposeSignStake(t, 0);
    }

    /*//////////////////////////////////////////////////////////////
                                HELPERS
    //////////////////////////////////////////////////////////////*/

    /// @dev A uniform-ish pick in [0, max] that, unlike `bound`, also works for max == type(uint256).max.
    function upTo(uint256 x, uint256 max) internal pure returns (uint256) {
        return max == type(uint256).max ? x : x % (max + 1);
    }

    /// @dev `n` amounts adding up to exactly `total`, in one of three shapes chosen by the seed: random cuts,
    /// an even split with the remainder on one leaf, or everything on one leaf.
    function splitOf(uint256 total, uint256 n, uint256 seed) internal pure returns (uint256[] memory amounts) {
        amounts = new uint256[](n);
        uint256 shape = seed % 3;
        uint256 lucky = (seed >> 8) % n;
        if (shape == 0) {
            uint256 remaining = total;
            for (uint256 i; i + 1 < n; ++i) {
                amounts[i] = upTo(uint256(keccak256(abi.encode(seed, i))), remaining);
                remaining -= amounts[i];
            }
            amounts[n - 1] = remaining;
        } else if (shape == 1) {
            for (uint256 i; i < n; ++i) {
                amounts[i] = total / n;
            }
            amounts[lucky] += total % n;
        } else {
            amounts[lucky] = total;
        }
    }

    /// @dev The agreement funded with `funding`, and one finalized round whose payout root holds `amounts` for
    /// the first `n` parties under `total`, claimable now.
    function finalizedSplit(uint256 n, uint256 total, uint256 funding, uint256[] memory amounts)
        internal
        returns (Split memory s)
    {
        s.who = new address[](n);
        for (uint256 i; i < n; ++i) {
            s.who[i] = everyone[i];
        }
        s.id = id;
        if (funding != 0) fundAs(coordinator, s.id, funding);
        s.round = openRoundOn(s.id);
        s.total = total;
        s.amounts = amounts;
        s.leaves = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            s.leaves[i] = payoutLeafOf(s.id, s.round, s.who[i], amounts[i]);
        }
        closeRound(s.id, s.round, Merkle.sortedRoot(s.leaves), total);
        vm.warp(vault.allocation(s.id, s.round).claimableAt);
    }

    function claimLeaf(Split memory s, uint256 i, uint256 amount) internal {
        bytes32[] memory proof = Merkle.sortedProof(s.leaves, i);
        vm.prank(s.who[i]);
        vault.claim(s.id, s.round, amount, proof);
    }

    /*//////////////////////////////////////////////////////////////
                                 FUZZ
    //////////////////////////////////////////////////////////////*/

    function testFuzz_everyLeafClaimsItsAmountAndTheClaimsSumToTheTotal(uint256 total, uint256 n, uint256 seed) public {
        n = bound(n, 1, MAX_LEAVES);
        total = bound(total, 1, type(uint256).max);
        Split memory s = finalizedSplit(n, total, total, splitOf(total, n, seed));

        uint256 sum;
        for (uint256 i; i < n; ++i) {
            claimLeaf(s, i, s.amounts[i]);
            assertEq(token.balanceOf(s.who[i]), s.amounts[i], "leaf paid exactly");
            sum += token.balanceOf(s.who[i]);
        }
        assertEq(sum, total, "claims sum to the total");
        assertEq(token.balanceOf(address(vault)), 0, "vault emptied");
        assertEq(vault.allocation(s.id, s.round).claimed, total, "allocation claimed");
        assertEq(vault.pool(s.id).paid, total, "pool paid");
        assertEq(vault.claimable(s.id), 0, "nothing claimable");
    }

    function testFuzz_noLeafIsClaimedTwice(uint256 total, uint256 n, uint256 seed, uint256 who) public {
        n = bound(n, 1, MAX_LEAVES);
        who = bound(who, 0, n - 1);
        total = bound(total, 1, type(uint256).max);
        Split memory s = finalizedSplit(n, total, total, splitOf(total, n, seed));
        claimLeaf(s, who, s.amounts[who]);

        vm.expectRevert(
            abi.encodeWithSelector(IRewardVault.RewardVaultAlreadyClaimed.selector, s.id, s.round, s.who[who])
        );
        claimLeaf(s, who, s.amounts[who]);
        assertEq(token.balanceOf(s.who[who]), s.amounts[who], "paid once");
    }

    function testFuzz_noLeafClaimsAnAmountOtherThanItsOwn(
        uint256 total,
        uint256 n,
        uint256 seed,
        uint256 who,
        uint256 wrong
    ) public {
        n = bound(n, 1, MAX_LEAVES);
        who = bound(who, 0, n - 1);
        total = bound(total, 1, type(uint256).max);
        Split memory s = finalizedSplit(n, total, total, splitOf(total, n, seed));
        vm.assume(wrong != s.amounts[who]);

        vm.expectRevert(
            abi.encodeWithSelector(IRewardVault.RewardVaultInvalidProof.selector, s.id, s.round, s.who[who], wrong)
        );
        claimLeaf(s, who, wrong);
    }

    /// @dev A payout root whose leaves add up to more than its total (a coordinator's mistake) pays claims in
    /// order until the next one would cross the total, refuses that one with AllocationExceeded, and never pays
    /// past the total, even when a sum of claimed amounts would not fit in 256 bits.
    function testFuzz_claimsNeverExceedTheAllocatedTotal(
        uint256 total,
        uint256 n,
        uint256 seed,
        uint256 excess,
        uint256 start
    ) public {
        n = bound(n, 2, MAX_LEAVES);
        total = bound(total, 1, type(uint256).max);
        uint256[] memory amounts = splitOf(total, n, seed);
        uint256 j = (seed >> 16) % n;
        if (amounts[j] == type(uint256).max) j = (j + 1) % n; // that leaf holds everything; pad another one
        amounts[j] += bound(excess, 1, type(uint256).max - amounts[j]);
        Split memory s = finalizedSplit(n, total, total, amounts);

        (uint256 claimed, uint256 refused) = claimAllFrom(s, bound(start, 0, n - 1));
        assertTrue(refused != 0, "the leaves sum past the total: some claim must be refused");
        assertLe(claimed, total, "never beyond the total");
        assertEq(vault.allocation(s.id, s.round).claimed, claimed, "allocation claimed");
        assertEq(token.balanceOf(address(vault)), total - claimed, "the rest stays in the vault");
    }

    /// @dev Claims every leaf, starting at `start` and wrapping around, expecting AllocationExceeded exactly
    /// for the leaves that no longer fit under the total.
    function claimAllFrom(Split memory s, uint256 start) internal returns (uint256 claimed, uint256 refused) {
        uint256 n = s.who.length;
        for (uint256 k; k < n; ++k) {
            uint256 i = (start + k) % n;
            uint256 amount = s.amounts[i];
            if (amount > s.total - claimed) {
                vm.expectRevert(
                    abi.encodeWithSelector(
                        IRewardVault.RewardVaultAllocationExceeded.selector, s.id, s.round, claimed, s.total
                    )
                );
                claimLeaf(s, i, amount);
                ++refused;
            } else {
                claimLeaf(s, i, amount);
                claimed += amount;
            }
        }
    }

    /// @dev The smallest case of the above at the bound: 1 claimed out of 1, then a leaf of 2^256 - 1.
    function test_claim_refusesALeafWhoseAmountWouldOverflowTheClaimedSum() public {
        uint256[] memory amounts = new uint256[](2);
        (amounts[0], amounts[1]) = (1, type(uint256).max);
        Split memory s = finalizedSplit(2, 1, 1, amounts);
        claimLeaf(s, 0, 1);
        vm.expectRevert(
            abi.encodeWithSelector(IRewardVault.RewardVaultAllocationExceeded.selector, s.id, s.round, 1, 1)
        );
        claimLeaf(s, 1, type(uint256).max);
    }

    /// @dev The test helper's sorted-pair trees verify with OpenZeppelin's MerkleProof, leaf by leaf.
    function testFuzz_sortedProofsVerifyWithOpenZeppelin(uint256 n, uint256 seed, uint256 i) public pure {
        n = bound(n, 1, 33);
        i = bound(i, 0, n - 1);
        bytes32[] memory leaves = new bytes32[](n);
        for (uint256 k; k < n; ++k) {
            leaves[k] = keccak256(abi.encode(seed, k));
        }
        bytes32 root = Merkle.sortedRoot(leaves);
        bytes32[] memory proof = Merkle.sortedProof(leaves, i);
        assertTrue(MerkleProof.verify(proof, root, leaves[i]), "leaf verifies");
        assertTrue(!MerkleProof.verify(proof, root, keccak256(abi.encode(leaves[i]))), "altered leaf does not");
    }
}
