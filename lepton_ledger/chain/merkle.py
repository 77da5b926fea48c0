"""The Merkle trees the contracts verify, built off-chain.

Two kinds, because the contracts need two different things:

- Payouts (``RewardVault.claim``, ``RewardVault.forfeitReward``). :class:`PayoutTree` builds the tree
  OpenZeppelin's ``StandardMerkleTree`` builds: leaves ``RewardVault.payoutLeaf`` (keccak256 of keccak256 of
  ``abi.encode(agreementId, round, partner, amount)``) sorted by value, laid out as a complete binary tree,
  each pair hashed in sorted order, so ``MerkleProof.verify`` accepts its proofs. A proof says that a leaf is
  in the tree, not where.
- Batched commitments (``RoundLedger.commitBatch`` / ``proveForgedCommitment``). :class:`PositionalTree` is
  ``PositionalMerkle.sol``: leaf i stays at position i, the leaves are padded with zero leaves to a power of
  two, and a parent is ``keccak256(left ++ right)`` unsorted, so a proof also proves the position, which ties
  leaf i to the i-th anchored entry. Its leaves are :func:`commitment_leaf` (``RoundLedger.commitmentLeaf``),
  its entries :func:`pack_entries`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise

from eth_abi import encode
from eth_utils import keccak

from ..errors import LeptonError
from ._values import InvalidValue, as_address, as_bytes, as_bytes32, as_uint

__all__ = [
    "ENTRY_SIZE",
    "LeafNotFound",
    "MerkleError",
    "PayoutTree",
    "PositionalTree",
    "StandardTree",
    "commitment_leaf",
    "pack_entries",
    "payout_leaf",
    "unpack_entries",
    "verify_positional_proof",
    "verify_sorted_proof",
]

#: Bytes per batch entry: uint16 party index + uint32 cumulative epsilon, big-endian.
ENTRY_SIZE = 6
_ZERO_LEAF = b"\x00" * 32


class MerkleError(LeptonError, ValueError):
    """A tree cannot be built from these inputs (no leaves, a duplicate partner, a malformed entry list)."""


class LeafNotFound(LeptonError, LookupError):
    """A proof was asked for a partner or a position that is not in the tree."""


# ---------------------------------------------------------------------------------------------------- leaves


def payout_leaf(agreement_id: int, round_id: int, partner: str, amount: int) -> bytes:
    """``RewardVault.payoutLeaf``: keccak256(keccak256(abi.encode(uint256, uint64, address, uint256))).

    Raises:
        InvalidValue: a value does not fit its Solidity type, or `partner` is not an address.
    """
    encoded = encode(
        ["uint256", "uint64", "address", "uint256"],
        [
            as_uint(agreement_id, 256, "agreement_id"),
            as_uint(round_id, 64, "round_id"),
            as_address(partner, "partner"),
            as_uint(amount, 256, "amount"),
        ],
    )
    return keccak(keccak(encoded))


def commitment_leaf(commitment_digest: bytes, signature: bytes) -> bytes:
    """``RoundLedger.commitmentLeaf``: keccak256(keccak256(abi.encode(digest, keccak256(signature)))).

    `commitment_digest` is the EIP-712 digest the partner signed
    (:func:`lepton_ledger.chain.typed_data.update_commitment_digest`); hashing twice keeps a leaf from passing
    for an inner node.

    Raises:
        InvalidValue: the digest is not 32 bytes, or the signature is not bytes.
    """
    digest = as_bytes32(commitment_digest, "commitment_digest")
    signature_hash = keccak(as_bytes(signature, "signature"))
    return keccak(keccak(encode(["bytes32", "bytes32"], [digest, signature_hash])))


def pack_entries(entries: Sequence[tuple[int, int]]) -> bytes:
    """Packs ``(party index, cumulative epsilon)`` pairs as ``commitBatch`` reads them: 6 bytes each,
    uint16 index then uint32 epsilon, big-endian.

    The order is kept as given: the contract refuses entries that are not sorted by strictly increasing index
    (``RoundLedgerUnsortedEntries``), and that refusal is its to make.

    Raises:
        InvalidValue: an index does not fit uint16 or an epsilon uint32.
    """
    packed = bytearray()
    for position, (index, epsilon) in enumerate(entries):
        packed += as_uint(index, 16, f"entries[{position}] index").to_bytes(2, "big")
        packed += as_uint(epsilon, 32, f"entries[{position}] epsilon").to_bytes(4, "big")
    return bytes(packed)


def unpack_entries(packed: bytes) -> list[tuple[int, int]]:
    """The inverse of :func:`pack_entries`, for reading ``BatchCommitted`` events.

    Raises:
        MerkleError: the length is not a multiple of 6 bytes.
    """
    data = as_bytes(packed, "packed")
    if len(data) % ENTRY_SIZE:
        raise MerkleError(f"packed entries are {len(data)} bytes, not a multiple of {ENTRY_SIZE}")
    return [
        (int.from_bytes(data[i : i + 2], "big"), int.from_bytes(data[i + 2 : i + ENTRY_SIZE], "big"))
        for i in range(0, len(data), ENTRY_SIZE)
    ]


# ------------------------------------------------------------------------------------------- payout tree


def _hash_sorted_pair(a: bytes, b: bytes) -> bytes:
    return keccak(a + b) if a < b else keccak(b + a)


def verify_sorted_proof(proof: Sequence[bytes], root: bytes, leaf: bytes) -> bool:
    """OpenZeppelin's ``MerkleProof.verify``: whether `proof` leads from `leaf` to `root`, pairs sorted.

    Raises:
        InvalidValue: a node is not 32 bytes.
    """
    node = as_bytes32(leaf, "leaf")
    for i, sibling in enumerate(proof):
        node = _hash_sorted_pair(node, as_bytes32(sibling, f"proof[{i}]"))
    return node == as_bytes32(root, "root")


class StandardTree:
    """OpenZeppelin ``StandardMerkleTree``'s layout over leaves that are already hashed.

    The leaves are sorted by value and fill a complete binary tree stored as an array (node i has children
    2i+1 and 2i+2) from its end; a parent hashes its children in sorted order. The same leaves give the same
    root and proofs as the JavaScript library, and ``MerkleProof.verify`` accepts them.

    Raises (constructor):
        MerkleError: no leaves, or a leaf given twice (its proof would be ambiguous).
        InvalidValue: a leaf is not 32 bytes.
    """

    def __init__(self, leaves: Sequence[bytes]) -> None:
        if not leaves:
            raise MerkleError("a Merkle tree needs at least one leaf")
        ordered = sorted(as_bytes32(leaf, f"leaves[{i}]") for i, leaf in enumerate(leaves))
        for previous, leaf in pairwise(ordered):
            if previous == leaf:
                raise MerkleError(f"leaf 0x{leaf.hex()} appears twice")
        size = 2 * len(ordered) - 1
        nodes: list[bytes] = [b""] * size
        for i, leaf in enumerate(ordered):
            nodes[size - 1 - i] = leaf
        for i in range(size - 1 - len(ordered), -1, -1):
            nodes[i] = _hash_sorted_pair(nodes[2 * i + 1], nodes[2 * i + 2])
        self.nodes: list[bytes] = nodes
        self._index_of = {leaf: size - 1 - i for i, leaf in enumerate(ordered)}

    @property
    def root(self) -> bytes:
        return self.nodes[0]

    def index_of(self, leaf: bytes) -> int:
        """Where `leaf` sits in :attr:`nodes` (the ``treeIndex`` of the JavaScript library's dump).

        Raises:
            LeafNotFound: `leaf` is not in the tree.
        """
        try:
            return self._index_of[as_bytes32(leaf, "leaf")]
        except KeyError:
            raise LeafNotFound(f"leaf 0x{bytes(leaf).hex()} is not in the tree") from None

    def proof(self, leaf: bytes) -> list[bytes]:
        """The siblings from `leaf` up to the root.

        Raises:
            LeafNotFound: `leaf` is not in the tree.
        """
        index = self.index_of(leaf)
        proof = []
        while index > 0:
            proof.append(self.nodes[index + 1 if index % 2 else index - 1])
            index = (index - 1) // 2
        return proof

    def __len__(self) -> int:
        return len(self._index_of)


class PayoutTree:
    """The payouts of one round, as the tree whose root ``finalizeRound`` anchors and ``claim`` proves against.

    A :class:`StandardTree` over :func:`payout_leaf` leaves: the tree OpenZeppelin's
    ``StandardMerkleTree.of(values, ["uint256", "uint64", "address", "uint256"])`` builds. One payout gives a
    tree whose root is its leaf and whose proof is empty.

    Raises (constructor):
        MerkleError: no payouts, or one partner given twice (in different letter cases).
        InvalidValue: an id, address or amount does not fit its Solidity type.
    """

    def __init__(self, agreement_id: int, round_id: int, payouts: Mapping[str, int]) -> None:
        if not payouts:
            raise MerkleError("a payout tree needs at least one payout")
        self.agreement_id = as_uint(agreement_id, 256, "agreement_id")
        self.round_id = as_uint(round_id, 64, "round_id")
        amounts: dict[str, int] = {}
        for partner, amount in payouts.items():
            address = as_address(partner, "partner")
            if address in amounts:
                raise MerkleError(f"partner {address} appears twice in the payouts")
            amounts[address] = as_uint(amount, 256, f"amount of {address}")
        self.payouts: dict[str, int] = amounts
        # Partners are distinct, so leaves are too.
        self._leaves = {
            address: payout_leaf(agreement_id, round_id, address, amount) for address, amount in amounts.items()
        }
        self.tree = StandardTree(list(self._leaves.values()))

    @property
    def root(self) -> bytes:
        """The payout root ``finalizeRound`` takes."""
        return self.tree.root

    @property
    def total(self) -> int:
        """The sum of the payouts: ``finalizeRound``'s `payoutTotal`."""
        return sum(self.payouts.values())

    def amount(self, partner: str) -> int:
        """`partner`'s payout.

        Raises:
            LeafNotFound: `partner` has no payout in this tree.
        """
        return self.payouts[self._known(partner)]

    def leaf(self, partner: str) -> bytes:
        """`partner`'s leaf (``RewardVault.payoutLeaf``).

        Raises:
            LeafNotFound: `partner` has no payout in this tree.
        """
        return self._leaves[self._known(partner)]

    def proof(self, partner: str) -> list[bytes]:
        """The siblings from `partner`'s leaf up to the root, as ``claim`` takes them.

        Raises:
            LeafNotFound: `partner` has no payout in this tree.
        """
        return self.tree.proof(self.leaf(partner))

    def _known(self, partner: str) -> str:
        try:
            address = as_address(partner, "partner")
        except InvalidValue:
            raise LeafNotFound(f"{partner!r} is not an address, so it has no payout") from None
        if address not in self.payouts:
            raise LeafNotFound(f"{address} has no payout in round {self.round_id} of agreement {self.agreement_id}")
        return address

    def __len__(self) -> int:
        return len(self.payouts)

    def __repr__(self) -> str:
        return (
            f"PayoutTree(agreement_id={self.agreement_id}, round_id={self.round_id}, "
            f"payouts={len(self.payouts)}, total={self.total}, root=0x{self.root.hex()})"
        )


# --------------------------------------------------------------------------------------- positional tree


def _depth(leaf_count: int) -> int:
    """``PositionalMerkle.depth``: levels above the leaves once padded to a power of two."""
    return max(leaf_count - 1, 0).bit_length()


def verify_positional_proof(proof: Sequence[bytes], root: bytes, leaf: bytes, position: int, leaf_count: int) -> bool:
    """``PositionalMerkle.verify``: whether `proof` places `leaf` at `position` in the tree of `leaf_count`
    leaves with `root`.

    Raises:
        InvalidValue: a node is not 32 bytes.
    """
    if not 0 <= position < leaf_count or len(proof) != _depth(leaf_count):
        return False
    node = as_bytes32(leaf, "leaf")
    for i, sibling in enumerate(proof):
        sibling = as_bytes32(sibling, f"proof[{i}]")
        node = keccak(node + sibling) if position & 1 == 0 else keccak(sibling + node)
        position >>= 1
    return node == as_bytes32(root, "root")


class PositionalTree:
    """``PositionalMerkle.sol``: leaves kept in order, padded with zero leaves to a power of two, a parent is
    ``keccak256(left ++ right)``. One leaf gives a tree whose root is that leaf and whose proof is empty.

    Raises (constructor):
        MerkleError: no leaves.
        InvalidValue: a leaf is not 32 bytes.
    """

    def __init__(self, leaves: Sequence[bytes]) -> None:
        if not leaves:
            raise MerkleError("a positional tree needs at least one leaf")
        self.leaves: list[bytes] = [as_bytes32(leaf, f"leaves[{i}]") for i, leaf in enumerate(leaves)]
        width = 1 << _depth(len(self.leaves))
        level = self.leaves + [_ZERO_LEAF] * (width - len(self.leaves))
        self._levels: list[list[bytes]] = [level]
        while len(level) > 1:
            level = [keccak(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
            self._levels.append(level)

    @property
    def root(self) -> bytes:
        """The root ``commitBatch`` anchors as `commitmentsRoot`."""
        return self._levels[-1][0]

    @property
    def depth(self) -> int:
        """The length of every proof."""
        return len(self._levels) - 1

    def proof(self, position: int) -> list[bytes]:
        """The siblings from leaf `position` up to the root, as ``BatchEvidence.proof`` takes them.

        Raises:
            LeafNotFound: `position` is not a leaf of the tree (padding leaves are not).
        """
        if isinstance(position, bool) or not isinstance(position, int) or not 0 <= position < len(self.leaves):
            raise LeafNotFound(f"position {position!r} is not in a tree of {len(self.leaves)} leaves")
        proof = []
        for level in self._levels[:-1]:
            proof.append(level[position ^ 1])
            position >>= 1
        return proof

    def __len__(self) -> int:
        return len(self.leaves)

    def __repr__(self) -> str:
        return f"PositionalTree(leaves={len(self.leaves)}, root=0x{self.root.hex()})"
