"""The Merkle helpers against known vectors and their contract counterparts' rules, without a chain.

The contract side of each equality (payoutLeaf, commitmentLeaf, a claim, proveForgedCommitment) is checked
against a live deployment in tests/contracts/test_chain_helpers.py.
"""

import random

import pytest
from eth_abi import encode
from eth_utils import keccak

from lepton_ledger.chain._values import InvalidValue
from lepton_ledger.chain.merkle import (
    LeafNotFound,
    MerkleError,
    PayoutTree,
    PositionalTree,
    StandardTree,
    commitment_leaf,
    pack_entries,
    payout_leaf,
    unpack_entries,
    verify_positional_proof,
    verify_sorted_proof,
)

PARTNER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
# RewardVault.payoutLeaf(7, 3, PARTNER, 25e18), as the contract returns it (tests/contracts/test_chain_helpers.py
# asserts the contract side of this constant).
PAYOUT_LEAF_7_3 = bytes.fromhex("da841fea2a2ab391f7995b027bc3cdcfa80e0d838b7900130c9c247f6f7bb02b")


def _address(i: int) -> str:
    return "0x" + f"{i:040x}"


def _manual_payout_leaf(agreement_id, round_id, partner, amount) -> bytes:
    # abi.encode of four static words, written out by hand.
    words = (
        agreement_id.to_bytes(32, "big")
        + round_id.to_bytes(32, "big")
        + bytes(12)
        + bytes.fromhex(partner[2:])
        + amount.to_bytes(32, "big")
    )
    return keccak(keccak(words))


# ---------------------------------------------------------------------------------------------------- leaves


def test_payout_leaf_is_double_keccak_of_abi_encoding():
    assert payout_leaf(7, 3, PARTNER, 25 * 10**18) == _manual_payout_leaf(7, 3, PARTNER, 25 * 10**18)


def test_payout_leaf_matches_the_contract_vector():
    assert payout_leaf(7, 3, PARTNER, 25 * 10**18) == PAYOUT_LEAF_7_3


def test_payout_leaf_ignores_address_case():
    assert payout_leaf(1, 1, PARTNER.lower(), 5) == payout_leaf(1, 1, PARTNER, 5)


@pytest.mark.parametrize(
    "args",
    [
        (-1, 1, PARTNER, 1),
        (1, 2**64, PARTNER, 1),
        (1, 1, PARTNER, 2**256),
        (1, 1, "0x1234", 1),
        (1, 1, PARTNER.lower().replace("c", "C", 1), 1),  # mixed case, wrong checksum
        (True, 1, PARTNER, 1),
    ],
)
def test_payout_leaf_refuses_values_outside_their_solidity_types(args):
    with pytest.raises(InvalidValue):
        payout_leaf(*args)


def test_commitment_leaf_is_double_keccak_of_digest_and_signature_hash():
    digest, signature = b"\x11" * 32, b"\x22" * 65
    expected = keccak(keccak(digest + keccak(signature)))
    assert commitment_leaf(digest, signature) == expected


def test_commitment_leaf_changes_with_the_signature():
    assert commitment_leaf(b"\x11" * 32, b"\x22" * 65) != commitment_leaf(b"\x11" * 32, b"\x23" + b"\x22" * 64)


def test_commitment_leaf_refuses_a_short_digest():
    with pytest.raises(InvalidValue):
        commitment_leaf(b"\x11" * 31, b"\x22" * 65)


# --------------------------------------------------------------------------------------------------- entries


def test_pack_entries_is_big_endian_uint16_then_uint32():
    assert pack_entries([(1, 2), (0x0102, 0x03040506)]) == bytes.fromhex("000100000002010203040506")


def test_pack_entries_keeps_the_given_order():
    assert pack_entries([(2, 1), (1, 1)]) == bytes.fromhex("000200000001000100000001")


def test_pack_entries_of_nothing_is_empty():
    assert pack_entries([]) == b""


@pytest.mark.parametrize("entry", [(2**16, 1), (1, 2**32), (-1, 1), (1, -1)])
def test_pack_entries_refuses_values_that_do_not_fit(entry):
    with pytest.raises(InvalidValue):
        pack_entries([entry])


def test_unpack_entries_inverts_pack_entries():
    entries = [(0, 1), (7, 8_000_000), (65535, 2**32 - 1)]
    assert unpack_entries(pack_entries(entries)) == entries


def test_unpack_entries_refuses_a_partial_entry():
    with pytest.raises(MerkleError):
        unpack_entries(b"\x00" * 7)


# ------------------------------------------------------------------------------------------- standard tree

# @openzeppelin/merkle-tree README: StandardMerkleTree.of([[0x11..11, 5e18], [0x22..22, 2.5e18]],
# ["address", "uint256"]).dump().tree
OZ_README_TREE = [
    "d4dee0beab2d53f2cc83e567171bd2820e49898130a22622b10ead383e90bd77",
    "eb02c421cfa48976e66dfb29120745909ea3a0f843456c263cf8f1253483e283",
    "b92c48e9d7abe27fd8dfd6b5dfdbfb1c9a463f80c712b66f3a5180a090cccafc",
]
# A five-leaf dump of the same library (leaf encoding address, address, uint256, uint256): its root and each
# value's treeIndex, which pin the layout of a tree whose size is not a power of two.
OZ_FIVE_LEAF_ROOT = "ebd0338c2091ebb3e5aaab17c9c880689563fe74580addc55a1291d0abad6199"
OZ_FIVE_LEAF_VALUES = [(0, 4283030, 7), (1, 4283024, 5), (2, 4283030, 8), (3, 4283030, 4), (4, 4283030, 6)]


def _oz_leaf(types, values) -> bytes:
    return keccak(keccak(encode(types, values)))


def test_standard_tree_matches_openzeppelin_readme_vector():
    leaves = [
        _oz_leaf(["address", "uint256"], ["0x1111111111111111111111111111111111111111", 5 * 10**18]),
        _oz_leaf(["address", "uint256"], ["0x2222222222222222222222222222222222222222", 25 * 10**17]),
    ]
    tree = StandardTree(leaves)
    assert [node.hex() for node in tree.nodes] == OZ_README_TREE
    assert tree.proof(leaves[0]) == [bytes.fromhex(OZ_README_TREE[2])]


def test_standard_tree_matches_openzeppelin_layout_of_five_leaves():
    owner, token = "0xe4A98D2bFD66Ce08128FdFFFC9070662E489a28E", "0x52469E13ac6DdbFbf803F48E7106f8294E2B888f"
    types = ["address", "address", "uint256", "uint256"]
    leaves = [_oz_leaf(types, [owner, token, i, amount]) for i, amount, _ in OZ_FIVE_LEAF_VALUES]
    tree = StandardTree(leaves)
    assert tree.root.hex() == OZ_FIVE_LEAF_ROOT
    assert [tree.index_of(leaf) for leaf in leaves] == [index for _, _, index in OZ_FIVE_LEAF_VALUES]


def test_standard_tree_does_not_depend_on_leaf_order():
    leaves = [keccak(bytes([i])) for i in range(6)]
    assert StandardTree(leaves).root == StandardTree(list(reversed(leaves))).root


def test_standard_tree_refuses_a_duplicate_leaf():
    with pytest.raises(MerkleError):
        StandardTree([b"\x01" * 32, b"\x01" * 32])


def test_standard_tree_refuses_no_leaves():
    with pytest.raises(MerkleError):
        StandardTree([])


# ---------------------------------------------------------------------------------------------- payout tree


def _payouts(n: int, seed: int = 0) -> dict[str, int]:
    rng = random.Random(seed)
    return {_address(rng.getrandbits(160)): rng.randint(1, 10**24) for _ in range(n)}


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 16, 33])
def test_every_payout_proof_verifies(n):
    payouts = _payouts(n, seed=n)
    tree = PayoutTree(4, 2, payouts)
    for partner, amount in payouts.items():
        assert verify_sorted_proof(tree.proof(partner), tree.root, payout_leaf(4, 2, partner, amount))


@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_payout_proof_depth_is_at_most_ceil_log2(n):
    tree = PayoutTree(1, 1, _payouts(n, seed=n))
    depth = (n - 1).bit_length()
    assert all(depth - 1 <= len(tree.proof(p)) <= depth for p in tree.payouts)


def test_single_payout_tree_has_its_leaf_as_root_and_an_empty_proof():
    tree = PayoutTree(1, 1, {PARTNER: 10})
    assert tree.root == payout_leaf(1, 1, PARTNER, 10)
    assert tree.proof(PARTNER) == []
    assert verify_sorted_proof([], tree.root, payout_leaf(1, 1, PARTNER, 10))


def test_payout_tree_total_is_the_sum_of_payouts():
    payouts = _payouts(5)
    assert PayoutTree(1, 1, payouts).total == sum(payouts.values())


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda a, r, p, amt: (a, r, p, amt + 1), id="amount"),
        pytest.param(lambda a, r, p, amt: (a + 1, r, p, amt), id="agreement"),
        pytest.param(lambda a, r, p, amt: (a, r + 1, p, amt), id="round"),
        pytest.param(lambda a, r, p, amt: (a, r, _address(0xBEEF), amt), id="partner"),
    ],
)
def test_payout_proof_fails_for_a_tampered_leaf(tamper):
    payouts = _payouts(5, seed=1)
    tree = PayoutTree(3, 9, payouts)
    partner, amount = next(iter(payouts.items()))
    assert not verify_sorted_proof(tree.proof(partner), tree.root, payout_leaf(*tamper(3, 9, partner, amount)))


def test_payout_proof_fails_with_a_tampered_sibling():
    payouts = _payouts(5, seed=2)
    tree = PayoutTree(1, 1, payouts)
    partner, amount = next(iter(payouts.items()))
    proof = tree.proof(partner)
    proof[-1] = bytes([proof[-1][0] ^ 1]) + proof[-1][1:]
    assert not verify_sorted_proof(proof, tree.root, payout_leaf(1, 1, partner, amount))


def test_payout_proof_of_one_partner_does_not_prove_another():
    payouts = _payouts(4, seed=3)
    tree = PayoutTree(1, 1, payouts)
    (first, _), (_, second_amount) = list(payouts.items())[:2]
    assert not verify_sorted_proof(tree.proof(first), tree.root, payout_leaf(1, 1, first, second_amount))


def test_payout_tree_looks_partners_up_in_any_case():
    tree = PayoutTree(1, 1, {PARTNER: 10, _address(5): 3})
    assert tree.proof(PARTNER.lower()) == tree.proof(PARTNER)
    assert tree.amount(PARTNER.lower()) == 10


def test_payout_tree_refuses_a_partner_given_twice():
    with pytest.raises(MerkleError):
        PayoutTree(1, 1, {PARTNER: 1, PARTNER.lower(): 2})


def test_payout_tree_refuses_no_payouts():
    with pytest.raises(MerkleError):
        PayoutTree(1, 1, {})


def test_payout_tree_refuses_a_negative_amount():
    with pytest.raises(InvalidValue):
        PayoutTree(1, 1, {PARTNER: -1})


def test_payout_proof_of_an_unknown_partner_raises_leaf_not_found():
    tree = PayoutTree(1, 1, {PARTNER: 1})
    with pytest.raises(LeafNotFound):
        tree.proof(_address(9))
    with pytest.raises(LeafNotFound):
        tree.proof("not an address")


# ------------------------------------------------------------------------------------------ positional tree


def _leaves(n: int) -> list[bytes]:
    return [keccak(b"leaf" + i.to_bytes(2, "big")) for i in range(n)]


def _naive_positional_root(leaves: list[bytes]) -> bytes:
    width = 1
    while width < len(leaves):
        width *= 2
    level = leaves + [b"\x00" * 32] * (width - len(leaves))
    while len(level) > 1:
        level = [keccak(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def test_positional_root_of_three_leaves_pads_with_a_zero_leaf():
    a, b, c = _leaves(3)
    expected = keccak(keccak(a + b) + keccak(c + b"\x00" * 32))
    assert PositionalTree([a, b, c]).root == expected


def test_positional_root_hashes_pairs_unsorted():
    a, b = sorted(_leaves(2))
    assert PositionalTree([b, a]).root == keccak(b + a) != keccak(a + b)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 8, 9, 17, 100])
def test_positional_root_matches_padded_construction(n):
    assert PositionalTree(_leaves(n)).root == _naive_positional_root(_leaves(n))


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13])
def test_every_positional_proof_verifies_at_its_position(n):
    leaves = _leaves(n)
    tree = PositionalTree(leaves)
    for position, leaf in enumerate(leaves):
        proof = tree.proof(position)
        assert len(proof) == (n - 1).bit_length() == tree.depth
        assert verify_positional_proof(proof, tree.root, leaf, position, n)


def test_single_leaf_positional_tree_has_its_leaf_as_root_and_an_empty_proof():
    (leaf,) = _leaves(1)
    tree = PositionalTree([leaf])
    assert tree.root == leaf
    assert tree.proof(0) == []
    assert verify_positional_proof([], leaf, leaf, 0, 1)


def test_positional_proof_does_not_verify_at_another_position():
    leaves = _leaves(5)
    tree = PositionalTree(leaves)
    assert not verify_positional_proof(tree.proof(1), tree.root, leaves[1], 0, 5)
    assert not verify_positional_proof(tree.proof(1), tree.root, leaves[1], 3, 5)


def test_positional_proof_fails_for_a_tampered_leaf_or_sibling():
    leaves = _leaves(6)
    tree = PositionalTree(leaves)
    assert not verify_positional_proof(tree.proof(2), tree.root, leaves[3], 2, 6)
    proof = tree.proof(2)
    proof[0] = b"\x00" * 32
    assert not verify_positional_proof(proof, tree.root, leaves[2], 2, 6)


def test_positional_proof_fails_with_a_wrong_leaf_count_or_length():
    leaves = _leaves(5)
    tree = PositionalTree(leaves)
    # 5 leaves need 3 levels; claiming 4 leaves (2 levels) or a padded position must fail like the library.
    assert not verify_positional_proof(tree.proof(0), tree.root, leaves[0], 0, 4)
    assert not verify_positional_proof(tree.proof(0)[:2], tree.root, leaves[0], 0, 5)
    assert not verify_positional_proof(tree.proof(4), tree.root, leaves[4], 5, 5)


def test_positional_tree_refuses_no_leaves():
    with pytest.raises(MerkleError):
        PositionalTree([])


def test_positional_tree_refuses_a_short_leaf():
    with pytest.raises(InvalidValue):
        PositionalTree([b"\x01" * 31])


@pytest.mark.parametrize("position", [-1, 3, 4])
def test_positional_proof_of_a_missing_position_raises_leaf_not_found(position):
    # Position 3 is a padding leaf of a 3-leaf tree: it exists in the tree but is no commitment.
    with pytest.raises(LeafNotFound):
        PositionalTree(_leaves(3)).proof(position)
