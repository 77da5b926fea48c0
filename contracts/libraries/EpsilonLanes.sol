// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title EpsilonLanes
/// @notice Cumulative epsilons packed eight to a storage word: party `index` holds the uint32 lane `index % 8`
/// of word `index / 8` (1e6 = 1.0). Packing is what keeps a batch to one storage write per eight parties.
library EpsilonLanes {
    /// @notice The epsilon of party `index` in its word.
    function lane(uint256 word, uint256 index) internal pure returns (uint32) {
        return uint32(word >> ((index & 7) * 32));
    }

    /// @notice `word` with party `index`'s lane set to `value`.
    function withLane(uint256 word, uint256 index, uint256 value) internal pure returns (uint256) {
        uint256 shift = (index & 7) * 32;
        return (word & ~(uint256(type(uint32).max) << shift)) | (value << shift);
    }

    /// @notice `word` less, in each lane whose bit is set in `lanes` (bit i: lane i), that lane's rise from
    /// `atOpen` to `atClose`: what a voided round's entries spent.
    /// @dev A lane with an entry rose over the round and was only charged more since, so nothing underflows; a
    /// failed assumption reverts on the checked subtraction rather than wrap.
    function subtractSpent(uint256 word, uint256 atOpen, uint256 atClose, uint256 lanes)
        internal
        pure
        returns (uint256)
    {
        for (uint256 i; i < 8; ++i) {
            if (lanes >> i & 1 != 0) {
                uint256 spent = uint256(lane(atClose, i)) - lane(atOpen, i);
                word = withLane(word, i, lane(word, i) - spent);
            }
        }
        return word;
    }
}
