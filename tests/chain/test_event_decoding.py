"""The event index's decoder against web3's ``process_log``: the same arguments, of the same types, on the real
logs of a demo round on anvil (both commit modes) and on a log of every event of every contract ABI the index
reads, with values drawn for each argument type."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from typing import Any

import pytest
from eth_abi import encode
from eth_abi.exceptions import DecodingError
from eth_utils import event_abi_to_log_topic, keccak
from hexbytes import HexBytes
from rich.console import Console
from web3 import Web3
from web3.datastructures import AttributeDict

from lepton_ledger.chain.anvil import Anvil
from lepton_ledger.chain.artifacts import load_artifact
from lepton_ledger.chain.deployment import Deployment
from lepton_ledger.chain.events import EventDecoder
from lepton_ledger.rounds.demo import run_demo

INDEXED_CONTRACTS = ("PartnerRegistry", "AgreementRegistry", "RewardVault", "RoundLedger", "ResultsCourt")
# Events the auditor and the coordinator read from the index, which the demo rounds below must have logged.
DEMO_EVENTS = {
    "single": {"AgreementProposed", "AgreementActivated", "RoundOpened", "UpdateSubmitted", "RoundFinalized"},
    "batched": {"BatchCommitted", "EpsilonsAtOpen", "EpsilonsAtClose", "Allocated", "Claimed", "RoleGranted"},
}


def exact(value: Any) -> Any:
    """A decoded value with its leaves' types kept: mappings as dicts, sequences as lists (web3 makes nested
    AttributeDicts and tuples of them, which the index's JSON does not tell apart)."""
    if isinstance(value, Mapping):
        return {k: exact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [exact(v) for v in value]
    return (type(value), value)


def contracts_of(d: Deployment) -> dict[str, Any]:
    return {c.address: c for c in (d.partners, d.agreements, d.vault, d.ledger, d.court)}


def decoders(contract: Any) -> dict[bytes, tuple[EventDecoder, Any]]:
    return {
        bytes(event_abi_to_log_topic(e)): (EventDecoder(e), contract.events[e["name"]]())
        for e in contract.abi
        if e["type"] == "event" and not e.get("anonymous")
    }


@pytest.mark.parametrize("mode", ["single", "batched"])
def test_decoder_gives_what_web3_gives_on_a_real_rounds_logs(mode, tmp_path):
    out = tmp_path / mode
    run_demo(out, partners=2, rounds=1, mode=mode, console=Console(quiet=True))
    deployment = json.loads((out / "deployment.json").read_text())
    seen: set[str] = set()
    with Anvil(state_file=out / deployment["state_file"]) as w3:
        by_address = {a: decoders(c) for a, c in contracts_of(Deployment.at(w3, deployment["contracts"])).items()}
        logs = w3.eth.get_logs({"fromBlock": 0, "toBlock": "latest", "address": list(by_address)})
        for log in logs:
            decoder, event = by_address[log["address"]][bytes(log["topics"][0])]
            assert exact(decoder.args(log)) == exact(event.process_log(log)["args"]), decoder.name
            seen.add(decoder.name)
    assert seen >= DEMO_EVENTS[mode]


def draw(kind: str, components: list[dict[str, Any]], rng: random.Random) -> Any:
    """A value of an ABI type, as eth_abi encodes it."""
    if kind.endswith("]"):
        item, size = kind[: kind.rindex("[")], kind[kind.rindex("[") + 1 : -1]
        return [draw(item, components, rng) for _ in range(int(size) if size else rng.randint(0, 3))]
    if kind == "tuple":
        return tuple(draw(c["type"], c.get("components", []), rng) for c in components)
    if kind == "address":
        return "0x" + rng.randbytes(20).hex()
    if kind == "bool":
        return rng.random() < 0.5
    if kind.startswith("uint"):
        return rng.getrandbits(int(kind[4:] or 256))
    if kind.startswith("int"):
        bits = int(kind[3:] or 256)
        return rng.getrandbits(bits) - 2 ** (bits - 1)
    if kind == "bytes":
        return rng.randbytes(rng.randint(0, 70))
    if kind.startswith("bytes"):
        return rng.randbytes(int(kind[5:]))
    if kind == "string":
        return rng.choice(["", "x", "ε budget"])
    raise AssertionError(f"no values drawn for {kind}")


def canonical(entry: Mapping[str, Any]) -> str:
    kind: str = entry["type"]
    if kind.startswith("tuple"):
        return "(" + ",".join(canonical(c) for c in entry["components"]) + ")" + kind[5:]
    return kind


def synthetic_log(address: str, entry: Mapping[str, Any], rng: random.Random) -> AttributeDict:
    """A log of this event, as a node would return it, with drawn arguments."""
    topics = [HexBytes(event_abi_to_log_topic(entry))]  # type: ignore[arg-type]
    data_types, data_values = [], []
    for arg in entry["inputs"]:
        value = draw(arg["type"], arg.get("components", []), rng)
        if not arg["indexed"]:
            data_types.append(canonical(arg))
            data_values.append(value)
        elif arg["type"] in ("string", "bytes") or arg["type"].endswith("]") or arg["type"].startswith("tuple"):
            topics.append(HexBytes(keccak(encode([canonical(arg)], [value]))))  # logged as a hash
        else:
            topics.append(HexBytes(encode([arg["type"]], [value])))
    return AttributeDict(
        {
            "address": address,
            "topics": topics,
            "data": HexBytes(encode(data_types, data_values)),
            "logIndex": 0,
            "transactionIndex": 0,
            "transactionHash": HexBytes(rng.randbytes(32)),
            "blockHash": HexBytes(rng.randbytes(32)),
            "blockNumber": 1,
        }
    )


def test_decoder_gives_what_web3_gives_on_every_event_of_every_abi():
    rng = random.Random(15)
    w3 = Web3()  # decoding needs no node
    checked = 0
    for name in INDEXED_CONTRACTS:
        address = Web3.to_checksum_address(rng.randbytes(20))
        contract = w3.eth.contract(address=address, abi=load_artifact(name).abi)
        for entry in contract.abi:
            if entry["type"] != "event" or entry.get("anonymous"):
                continue
            decoder, event = EventDecoder(entry), contract.events[entry["name"]]()
            for _ in range(5):
                log = synthetic_log(address, entry, rng)
                assert exact(decoder.args(log)) == exact(event.process_log(log)["args"]), (name, entry["name"])
                checked += 1
    assert checked > 5 * 40


def test_a_log_that_does_not_fit_its_event_is_one_chain_error():
    entry = next(e for e in load_artifact("RoundLedger").abi if e.get("name") == "BatchCommitted")
    log = synthetic_log(Web3.to_checksum_address(b"\x01" * 20), entry, random.Random(1))
    decoder = EventDecoder(entry)
    with pytest.raises(ValueError, match="expected 2 indexed topics, got 1"):
        decoder.args({**log, "topics": log["topics"][:2]})
    with pytest.raises(DecodingError):
        decoder.args({**log, "data": log["data"][:40]})
