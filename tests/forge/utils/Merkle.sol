// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @dev Merkle trees built in the tests, independently of the contracts:
/// - positional trees as {PositionalMerkle} verifies them (batched commitments): leaves keep their order, the
///   tree is padded with zero leaves to the next power of two, a parent is keccak256(left ++ right);
/// - sorted-pair trees as OpenZeppelin's MerkleProof verifies them (payout roots): a parent is the keccak256 of
///   the smaller child followed by the larger, and the last node of an odd level moves up unpaired.
library Merkle {
    /*//////////////////////////////////////////////////////////////
                            POSITIONAL TREES
    //////////////////////////////////////////////////////////////*/

    function positionalRoot(bytes32[] memory leaves) internal pure returns (bytes32) {
        bytes32[] memory level = _padded(leaves);
        while (level.length > 1) level = _positionalLevelUp(level);
        return level[0];
    }

    /// @dev The siblings of leaf `position`, from the leaf up.
    function positionalProof(bytes32[] memory leaves, uint256 position) internal pure returns (bytes32[] memory proof) {
        bytes32[] memory level = _padded(leaves);
        uint256 levels;
        for (uint256 width = level.length; width > 1; width >>= 1) {
            ++levels;
        }
        proof = new bytes32[](levels);
        for (uint256 i; i < levels; ++i) {
            proof[i] = level[position ^ 1];
            level = _positionalLevelUp(level);
            position >>= 1;
        }
    }

    function _padded(bytes32[] memory leaves) private pure returns (bytes32[] memory level) {
        require(leaves.length != 0, "no leaves");
        uint256 width = 1;
        while (width < leaves.length) width <<= 1;
        level = new bytes32[](width);
        for (uint256 i; i < leaves.length; ++i) {
            level[i] = leaves[i];
        }
    }

    function _positionalLevelUp(bytes32[] memory level) private pure returns (bytes32[] memory up) {
        up = new bytes32[](level.length / 2);
        for (uint256 i; i < up.length; ++i) {
            up[i] = keccak256(abi.encodePacked(level[2 * i], level[2 * i + 1]));
        }
    }

    /*//////////////////////////////////////////////////////////////
                           SORTED-PAIR TREES
    //////////////////////////////////////////////////////////////*/

    function sortedRoot(bytes32[] memory leaves) internal pure returns (bytes32) {
        require(leaves.length != 0, "no leaves");
        bytes32[] memory level = leaves;
        while (level.length > 1) level = _sortedLevelUp(level);
        return level[0];
    }

    /// @dev The siblings of leaf `index`, from the leaf up (an unpaired node contributes none at its level).
    function sortedProof(bytes32[] memory leaves, uint256 index) internal pure returns (bytes32[] memory proof) {
        require(index < leaves.length, "index");
        bytes32[] memory scratch = new bytes32[](256);
        uint256 n;
        bytes32[] memory level = leaves;
        while (level.length > 1) {
            uint256 sibling = index ^ 1;
            if (sibling < level.length) scratch[n++] = level[sibling];
            level = _sortedLevelUp(level);
            index >>= 1;
        }
        proof = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            proof[i] = scratch[i];
        }
    }

    function sortedParent(bytes32 a, bytes32 b) internal pure returns (bytes32) {
        return a < b ? keccak256(abi.encodePacked(a, b)) : keccak256(abi.encodePacked(b, a));
    }

    function _sortedLevelUp(bytes32[] memory level) private pure returns (bytes32[] memory up) {
        up = new bytes32[]((level.length + 1) / 2);
        for (uint256 i; i < up.length; ++i) {
            up[i] = 2 * i + 1 < level.length ? sortedParent(level[2 * i], level[2 * i + 1]) : level[2 * i];
        }
    }
}
