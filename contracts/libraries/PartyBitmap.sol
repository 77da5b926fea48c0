// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title PartyBitmap
/// @notice One bit per party index, 256 to a storage word: party `index` is bit `index % 256` of word
/// `index / 256`. An agreement has at most 256 parties, so a round's flags (submitted, claimed) cost one word.
library PartyBitmap {
    /// @notice The key of the word that holds party `index`'s bit.
    function wordOf(uint256 index) internal pure returns (uint256) {
        return index >> 8;
    }

    /// @notice The mask of party `index`'s bit within its word.
    function bitOf(uint256 index) internal pure returns (uint256) {
        return 1 << (index & 255);
    }

    /// @notice Whether party `index`'s bit is set.
    function isSet(mapping(uint256 => uint256) storage bits, uint256 index) internal view returns (bool) {
        return bits[index >> 8] & bitOf(index) != 0;
    }

    /// @notice Sets party `index`'s bit; returns false, changing nothing, when it was set already.
    function trySet(mapping(uint256 => uint256) storage bits, uint256 index) internal returns (bool) {
        uint256 bit = bitOf(index);
        uint256 word = bits[index >> 8];
        if (word & bit != 0) return false;
        bits[index >> 8] = word | bit;
        return true;
    }

    /// @notice Clears party `index`'s bit.
    function unset(mapping(uint256 => uint256) storage bits, uint256 index) internal {
        bits[index >> 8] &= ~bitOf(index);
    }
}
