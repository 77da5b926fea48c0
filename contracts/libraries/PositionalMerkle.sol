// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title PositionalMerkle
/// @notice Merkle trees whose leaves keep their order, so a proof also proves a leaf's position. A tree of n
/// leaves is padded with zero leaves to the next power of two; a parent is keccak256(left ++ right).
/// @dev OpenZeppelin's MerkleProof sorts each pair and so forgets positions; batched commitments need them,
/// because leaf i must be the commitment behind the i-th anchored entry.
library PositionalMerkle {
    /// @notice The number of levels above the leaves of a tree of `leafCount` leaves.
    function depth(uint256 leafCount) internal pure returns (uint256 levels) {
        uint256 width = 1;
        while (width < leafCount) {
            width <<= 1;
            ++levels;
        }
    }

    /// @notice Whether `proof` places `leaf` at `position` in the tree of `leafCount` leaves with `root`.
    function verify(bytes32[] calldata proof, bytes32 root, bytes32 leaf, uint256 position, uint256 leafCount)
        internal
        pure
        returns (bool)
    {
        if (position >= leafCount || proof.length != depth(leafCount)) return false;
        bytes32 node = leaf;
        for (uint256 i; i < proof.length; ++i) {
            node = position & 1 == 0 ? _parent(node, proof[i]) : _parent(proof[i], node);
            position >>= 1;
        }
        return node == root;
    }

    function _parent(bytes32 left, bytes32 right) private pure returns (bytes32 parent) {
        // Hashing in scratch space spares the memory allocation abi.encodePacked makes at every level of a proof.
        // solhint-disable-next-line no-inline-assembly
        assembly ("memory-safe") {
            mstore(0x00, left)
            mstore(0x20, right)
            parent := keccak256(0x00, 0x40)
        }
    }
}
