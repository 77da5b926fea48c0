"""CIDs and dag-pb/UnixFS encoding against public vectors and the `multiformats` package."""

from __future__ import annotations

import hashlib

import multiformats
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lepton_ledger.storage.cid import (
    DAG_PB,
    RAW,
    b58decode,
    b58encode,
    cid_to_str,
    decode_varint,
    encode_varint,
    make_cid,
    parse_cid,
    verify_block,
)
from lepton_ledger.storage.dagpb import (
    T_FILE,
    DecodeError,
    PBLink,
    PBNode,
    decode_node,
    decode_unixfs,
    encode_node,
    encode_unixfs,
    file_leaf_parts,
)
from lepton_ledger.storage.store import BlockCorrupted, InvalidCID

HELLO_V0 = "QmWfVY9y3xjsixTgbd9AorQxH7VtMpzfx2HaWtsoUYecaX"
# The kubo v0 leaf of b"hello": PBNode{Data: UnixFS{Type: File, Data: "hello", filesize: 5}}.
HELLO_LEAF = bytes.fromhex("0a0b0802120568656c6c6f1805")


def test_hello_leaf_encodes_to_the_public_vector() -> None:
    head, tail = file_leaf_parts(5)
    assert head + b"hello" + tail == HELLO_LEAF
    assert cid_to_str(make_cid(HELLO_LEAF)) == HELLO_V0


def test_empty_leaf_has_no_data_field() -> None:
    head, tail = file_leaf_parts(0)
    assert (head + tail).hex() == "0a0408021800"
    assert cid_to_str(make_cid(head + tail)) == "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"


def test_raw_cid_of_hello() -> None:
    assert (
        cid_to_str(make_cid(b"hello", version=1, codec=RAW))
        == "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"
    )


@given(st.binary(min_size=32, max_size=32), st.sampled_from([(0, DAG_PB), (1, DAG_PB), (1, RAW)]))
@settings(max_examples=200, deadline=None)
def test_cid_strings_agree_with_multiformats(digest: bytes, kind: tuple[int, int]) -> None:
    version, codec = kind
    from lepton_ledger.storage.cid import cid_from_digest

    ours = cid_to_str(cid_from_digest(digest, version=version, codec=codec))
    theirs = multiformats.CID(
        "base58btc" if version == 0 else "base32",
        version,
        "dag-pb" if codec == DAG_PB else "raw",
        multiformats.multihash.wrap(digest, "sha2-256"),
    )
    assert ours == str(theirs)
    parsed = parse_cid(ours)
    assert (parsed.version, parsed.codec, parsed.digest) == (version, codec, digest)
    assert str(parsed) == ours


@given(st.binary(max_size=40))
def test_base58_round_trip(data: bytes) -> None:
    assert b58decode(b58encode(data)) == data


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_varint_round_trip(n: int) -> None:
    enc = encode_varint(n)
    assert decode_varint(enc) == (n, len(enc))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Qmfoo",
        "hello",
        HELLO_V0[:-1] + "0",  # '0' is not in the base58 alphabet
        HELLO_V0[:-2],
        "bafy!!!",
        "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4ye",  # truncated
        # a CIDv1 with a dag-cbor codec (0x71): valid elsewhere, not a UnixFS block here
        "bafyreihdb57fdysx5h35urvxz64ros7zvywshber7id6t6c6fek37jgyfe",
    ],
)
def test_malformed_cids_are_refused_by_name(text: str) -> None:
    with pytest.raises(InvalidCID) as info:
        parse_cid(text)
    assert repr(text) in str(info.value) or not text


def test_verify_block_names_the_cid() -> None:
    verify_block(HELLO_V0, HELLO_LEAF)
    tampered = bytearray(HELLO_LEAF)
    tampered[-3] ^= 1
    with pytest.raises(BlockCorrupted) as info:
        verify_block(HELLO_V0, bytes(tampered))
    assert info.value.cid == HELLO_V0 and HELLO_V0 in str(info.value)


def test_node_round_trip_keeps_links_before_data() -> None:
    node = PBNode(
        links=[PBLink(HELLO_V0, "", 13), PBLink(cid_to_str(make_cid(b"x", version=1, codec=RAW)), "n", 1)],
        data=encode_unixfs(T_FILE, filesize=6, blocksizes=[5, 1]),
    )
    block = encode_node(node)
    assert block[0] == 0x12  # field 2 (Links) first, as the dag-pb spec requires
    assert decode_node(block) == node
    fs = decode_unixfs(node.data or b"")
    assert (fs.type, fs.filesize, fs.blocksizes, fs.data) == (T_FILE, 6, [5, 1], None)


@pytest.mark.parametrize("block", [b"\x0a\x05abc", b"\x1a\x00", b"\x0a\x00\x12\x00", b"\x12\x02\x18\x01"])
def test_malformed_dag_pb_is_refused(block: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_node(block)


def test_sha256_is_what_cids_hash() -> None:
    assert make_cid(b"abc", version=1, codec=RAW)[-32:] == hashlib.sha256(b"abc").digest()
