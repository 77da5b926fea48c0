// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title EpsilonLanes
/// @notice Cumulative epsilons (1e6 = 1.0) packed into storage words in lanes of `bits` bits, 256 / `bits` lanes to
/// a word: party `index` holds lane `index % lanes` of word `index / lanes`. The width is the agreement's
/// ({IAgreementRegistry-epsilonLaneBitsFor}): 24 bits (ten lanes) when its cap fits, else 32 (eight). Packing is
/// what keeps a batch to one storage write per word of parties.
library EpsilonLanes {
    /// @notice How many lanes of `bits` bits one word holds.
    function perWord(uint256 bits) internal pure returns (uint256) {
        return 256 / bits;
    }

    /// @notice How many bits of a word its lanes use: 240 for 24-bit lanes, 256 for 32-bit ones.
    function span(uint256 bits) internal pure returns (uint256) {
        return perWord(bits) * bits;
    }

    /// @notice How many words hold the lanes of `partyCount` parties.
    function wordCount(uint256 partyCount, uint256 bits) internal pure returns (uint256) {
        uint256 lanes = perWord(bits);
        return (partyCount + lanes - 1) / lanes;
    }

    /// @notice The key of the word that holds party `index`'s lane.
    function wordOf(uint256 index, uint256 bits) internal pure returns (uint256) {
        return index / perWord(bits);
    }

    /// @notice The epsilon of party `index` in its word.
    function lane(uint256 word, uint256 index, uint256 bits) internal pure returns (uint256) {
        return (word >> ((index % perWord(bits)) * bits)) & ((1 << bits) - 1);
    }

    /// @notice `word` with party `index`'s lane set to `value` (which fits the lane).
    function withLane(uint256 word, uint256 index, uint256 bits, uint256 value) internal pure returns (uint256) {
        uint256 shift = (index % perWord(bits)) * bits;
        return (word & ~(((1 << bits) - 1) << shift)) | (value << shift);
    }

    /// @notice `word` less, in each lane whose bit is set in `lanes` (bit i: lane i), that lane's rise from
    /// `atOpen` to `atClose`: what a voided round's entries spent.
    /// @dev A lane with an entry rose over the round and was only charged more since, so nothing underflows; a
    /// failed assumption reverts on the checked subtraction rather than wrap.
    function subtractSpent(uint256 word, uint256 atOpen, uint256 atClose, uint256 lanes, uint256 bits)
        internal
        pure
        returns (uint256)
    {
        for (uint256 i; i < perWord(bits); ++i) {
            if (lanes >> i & 1 != 0) {
                uint256 spent = lane(atClose, i, bits) - lane(atOpen, i, bits);
                word = withLane(word, i, bits, lane(word, i, bits) - spent);
            }
        }
        return word;
    }
}
