"""``is_valid_signature_now`` decides as OpenZeppelin's SignatureChecker on a real chain (anvil): an ECDSA
signature by the party, or a contract party's ERC-1271 answer (the repo's SmartWallet test double); anything a
wallet does wrong (revert, no such function, a wrong answer) is False, never an exception."""

from __future__ import annotations

import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from web3 import Web3

from lepton_ledger.chain.anvil import Anvil, dev_account
from lepton_ledger.chain.artifacts import load_artifact
from lepton_ledger.chain.transactions import Transactor
from lepton_ledger.chain.typed_data import sign_digest
from lepton_ledger.protocol.signatures import is_valid_signature_now

DIGEST = bytes(range(32))


@pytest.fixture(scope="module")
def chain():
    with Anvil() as w3:
        owner, other = dev_account(3), dev_account(4)
        tx = Transactor(w3, [owner, other])
        wallet = tx.deploy(load_artifact("SmartWallet"), owner.address, sender=owner.address)
        token = tx.deploy(load_artifact("LeptonToken"), "T", "T", owner.address, sender=owner.address)
        yield w3, owner, other, wallet.address, token.address


def test_an_ecdsa_signature_by_the_party_is_valid_and_by_another_is_not(chain):
    w3, owner, other, _, _ = chain
    assert is_valid_signature_now(w3, owner.address, DIGEST, sign_digest(bytes(owner.key), DIGEST))
    assert not is_valid_signature_now(w3, owner.address, DIGEST, sign_digest(bytes(other.key), DIGEST))
    assert not is_valid_signature_now(w3, owner.address, DIGEST, b"\x01" * 65)


def test_a_wallet_party_is_judged_by_its_erc1271_answer(chain):
    w3, owner, other, wallet, _ = chain
    assert is_valid_signature_now(w3, wallet, DIGEST, sign_digest(bytes(owner.key), DIGEST))
    assert not is_valid_signature_now(w3, wallet, DIGEST, sign_digest(bytes(other.key), DIGEST))
    assert not is_valid_signature_now(w3, wallet, DIGEST, b"garbage")


def test_a_contract_without_erc1271_says_no_without_raising(chain):
    w3, owner, _, _, token = chain
    assert not is_valid_signature_now(w3, token, DIGEST, sign_digest(bytes(owner.key), DIGEST))


def test_a_node_that_drops_the_wallets_call_is_an_error_not_a_bad_signature(chain):
    """A node that fails while the wallet is asked says nothing of the signature: the check raises, so an honest
    wallet is not left out (or found forged by an audit) because of a dropped connection."""
    w3, owner, _, wallet, _ = chain
    upstream = w3.provider.endpoint_uri

    class DropsCalls(BaseHTTPRequestHandler):  # a real HTTP hop before the real node; eth_call's connection dies
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if json.loads(body).get("method") == "eth_call":
                self.close_connection = True
                return
            answer = urllib.request.urlopen(
                urllib.request.Request(upstream, body, {"Content-Type": "application/json"})
            ).read()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), DropsCalls)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        flaky = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{server.server_port}", exception_retry_configuration=None))
        with pytest.raises(OSError):
            is_valid_signature_now(flaky, wallet, DIGEST, sign_digest(bytes(owner.key), DIGEST))
    finally:
        server.shutdown()
