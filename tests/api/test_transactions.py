"""What only its signer may send: prepared by the service, signed by the party, relayed once its signer is the
caller, its target allow-listed and an eth_call of it succeeds. Every refusal sends nothing (the signer's
nonce is unchanged)."""

from __future__ import annotations

import pytest


def _prepare(service, account, contract, function, args, headers=None):
    return service.api.post(
        "/v1/transactions/prepare",
        json={"contract": contract, "function": function, "args": args},
        headers=headers or service.headers(account),
    )


def _signed(account, unsigned: dict, **changes) -> str:
    tx = {k: v for k, v in unsigned.items() if k != "from"} | changes
    return account.sign_transaction(tx).raw_transaction.to_0x_hex()


def _claim_args(service, account):
    reward = service.api.get(
        f"/v1/rewards/{service.agreement_id}/{service.round_id}/{account.address}", headers=service.headers(account)
    ).json()
    return [service.agreement_id, service.round_id, int(reward["amount"]), reward["proof"]]


def _nonce(service, account) -> int:
    return service.w3.eth.get_transaction_count(account.address)


def test_a_partner_claims_through_the_service_once(service):
    beta, token = service.beta, service.token
    unsigned = _prepare(service, beta, "RewardVault", "claim", _claim_args(service, beta))
    assert unsigned.status_code == 200, unsigned.text
    assert unsigned.json()["from"] == beta.address and unsigned.json()["to"] == service.d.vault.address
    raw = _signed(beta, unsigned.json())
    before = token.functions.balanceOf(beta.address).call()
    headers = service.headers(beta) | {"Idempotency-Key": "claim-1"}
    first = service.api.post("/v1/transactions", json={"raw": raw}, headers=headers)
    assert first.status_code == 200 and first.json()["status"] == 1, first.text
    assert first.json()["function"] == "claim"
    paid = token.functions.balanceOf(beta.address).call() - before
    assert paid == service.payouts[beta.address]
    # The same key and bytes again: the same answer, nothing sent; the same bytes without a key: the same receipt.
    assert service.api.post("/v1/transactions", json={"raw": raw}, headers=headers).json() == first.json()
    assert (
        service.api.post("/v1/transactions", json={"raw": raw}, headers=service.headers(beta)).json()["tx_hash"]
        == first.json()["tx_hash"]
    )
    assert token.functions.balanceOf(beta.address).call() - before == paid
    reused = service.api.post("/v1/transactions", json={"raw": raw + "00"}, headers=headers)
    assert reused.status_code == 409 and reused.json()["error"]["code"] == "IdempotencyKeyReused"


def test_a_transaction_signed_by_someone_else_is_403_and_not_sent(service):
    alpha, beta = service.alpha, service.beta
    unsigned = _prepare(service, alpha, "RewardVault", "claim", _claim_args(service, alpha)).json()
    raw = _signed(alpha, unsigned)
    before = _nonce(service, alpha)
    reply = service.api.post("/v1/transactions", json={"raw": raw}, headers=service.headers(beta))
    assert reply.status_code == 403 and "signed by" in reply.json()["error"]["message"]
    assert _nonce(service, alpha) == before


def test_without_a_token_nothing_is_sent(service):
    alpha = service.alpha
    unsigned = _prepare(service, alpha, "RewardVault", "claim", _claim_args(service, alpha)).json()
    before = _nonce(service, alpha)
    assert service.api.post("/v1/transactions", json={"raw": _signed(alpha, unsigned)}).status_code == 401
    assert (
        service.api.post(
            "/v1/transactions", json={"raw": _signed(alpha, unsigned)}, headers={"Authorization": "Bearer stale"}
        ).status_code
        == 401
    )
    assert _nonce(service, alpha) == before


def test_a_call_that_would_revert_is_409_with_the_error_and_not_sent(service):
    alpha = service.alpha
    args = _claim_args(service, alpha)
    unsigned = _prepare(service, alpha, "RewardVault", "claim", args).json()
    args[2] += 1  # more than the tree pays: the proof no longer holds
    data = service.d.vault.encode_abi("claim", args=args)
    before = _nonce(service, alpha)
    reply = service.api.post(
        "/v1/transactions", json={"raw": _signed(alpha, unsigned, data=data)}, headers=service.headers(alpha)
    )
    assert reply.status_code == 409 and reply.json()["error"]["code"].startswith("RewardVault"), reply.text
    assert _nonce(service, alpha) == before


def test_a_target_outside_the_allow_list_is_403_and_not_sent(service):
    alpha = service.alpha
    unsigned = _prepare(service, alpha, "RewardVault", "claim", _claim_args(service, alpha)).json()
    data = service.d.ledger.encode_abi("abandonRound", args=[service.agreement_id, 2])
    before = _nonce(service, alpha)
    for changes in (
        {"to": service.d.ledger.address, "data": data},
        {"to": service.token.address, "data": service.token.encode_abi("approve", args=[alpha.address, 1])},
    ):
        reply = service.api.post(
            "/v1/transactions", json={"raw": _signed(alpha, unsigned, **changes)}, headers=service.headers(alpha)
        )
        assert reply.status_code == 403, reply.text
    assert _nonce(service, alpha) == before


@pytest.mark.parametrize("raw", ["0x", "0x1234", "nothex"])
def test_malformed_raw_transactions_are_422(service, raw):
    reply = service.api.post("/v1/transactions", json={"raw": raw}, headers=service.headers(service.alpha))
    assert reply.status_code == 422


def test_another_chains_transaction_is_422(service):
    alpha = service.alpha
    unsigned = _prepare(service, alpha, "RewardVault", "claim", _claim_args(service, alpha)).json()
    reply = service.api.post(
        "/v1/transactions", json={"raw": _signed(alpha, unsigned, chainId=1)}, headers=service.headers(alpha)
    )
    assert reply.status_code == 422 and reply.json()["error"]["code"] == "WrongChain"


def test_prepare_refusals(service):
    alpha = service.alpha
    assert _prepare(service, alpha, "RoundLedger", "openRound", []).status_code == 422
    assert _prepare(service, alpha, "RewardVault", "claim", ["x"]).status_code == 422
    again = _prepare(service, alpha, "PartnerRegistry", "register", ["0x" + "11" * 32, "0x" + "22" * 32])
    assert again.status_code == 409 and again.json()["error"]["code"] == "PartnerRegistryAlreadyRegistered"
    assert (
        service.api.post("/v1/transactions/prepare", json={"contract": "RewardVault", "function": "claim"}).status_code
        == 401
    )


def test_an_approve_with_truncated_arguments_is_422_not_a_crash(service):
    alpha = service.alpha
    unsigned = _prepare(service, alpha, "RewardVault", "claim", _claim_args(service, alpha)).json()
    data = service.token.encode_abi("approve", args=[service.d.vault.address, 1])[: 2 + 2 * (4 + 10)]
    before = _nonce(service, alpha)
    reply = service.api.post(
        "/v1/transactions",
        json={"raw": _signed(alpha, unsigned, to=service.token.address, data=data)},
        headers=service.headers(alpha),
    )
    assert reply.status_code == 422 and reply.json()["error"]["code"] == "Malformed", reply.text
    assert _nonce(service, alpha) == before


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        (lambda tx: {"nonce": tx["nonce"] + 1}, "NonceMismatch"),  # the node would hold it pending, the relay waiting
        (lambda tx: {"nonce": tx["nonce"] - 1}, "NonceMismatch"),  # the node would refuse it: nonce too low
        (lambda tx: {"maxFeePerGas": 1, "maxPriorityFeePerGas": 1}, "FeeTooLow"),
        (lambda tx: {"maxFeePerGas": 10**30}, "InsufficientFunds"),
    ],
    ids=["future nonce", "used nonce", "fee below the base fee", "more than the balance"],
)
def test_a_transaction_the_node_would_not_mine_is_409_and_not_sent(service, changes, code):
    """Not a 503 ("the chain does not answer") after waiting for a receipt that never comes: the signer's own
    transaction is wrong, and the relay says how."""
    alpha = service.alpha
    unsigned = _prepare(service, alpha, "RewardVault", "claim", _claim_args(service, alpha)).json()
    before = _nonce(service, alpha)
    reply = service.api.post(
        "/v1/transactions", json={"raw": _signed(alpha, unsigned, **changes(unsigned))}, headers=service.headers(alpha)
    )
    assert reply.status_code == 409 and reply.json()["error"]["code"] == code, reply.text
    assert _nonce(service, alpha) == before and service.w3.eth.get_transaction_count(alpha.address, "pending") == before


def test_a_blob_transaction_is_422_and_not_sent(service):
    """EIP-4844 needs a sidecar the relay never has: the node would refuse it, which is no chain outage (503)."""
    alpha = service.alpha
    unsigned = _prepare(service, alpha, "RewardVault", "claim", _claim_args(service, alpha)).json()
    before = _nonce(service, alpha)
    raw = _signed(alpha, unsigned, type=3, maxFeePerBlobGas=10**10, blobVersionedHashes=["0x01" + "00" * 31])
    reply = service.api.post("/v1/transactions", json={"raw": raw}, headers=service.headers(alpha))
    assert reply.status_code == 422 and "type 3" in reply.json()["error"]["message"], reply.text
    assert _nonce(service, alpha) == before


def test_prepare_with_arguments_that_do_not_fit_names_the_signature(service):
    reply = _prepare(service, service.alpha, "RewardVault", "claim", [1, 1, 1, [[[]]]])
    assert reply.status_code == 422, reply.text
    assert (
        reply.json()["error"]["message"]
        == "the arguments do not fit RewardVault.claim(uint256,uint64,uint256,bytes32[])"
    )


@pytest.mark.parametrize("gas", [1, 21_000, 10**9], ids=["below intrinsic", "below the call's need", "over the block"])
def test_a_gas_limit_the_node_refuses_is_409_and_not_sent(service, gas):
    """The node answers these with an RPC error: the signer's mistake, neither a crash (500) nor an outage (503)."""
    alpha = service.alpha
    unsigned = _prepare(service, alpha, "RewardVault", "claim", _claim_args(service, alpha)).json()
    before = _nonce(service, alpha)
    reply = service.api.post(
        "/v1/transactions", json={"raw": _signed(alpha, unsigned, gas=gas)}, headers=service.headers(alpha)
    )
    assert reply.status_code == 409, reply.text
    assert _nonce(service, alpha) == before


def test_prepare_and_relay_apply_the_chains_rule_to_a_suspended_partner(service):
    """The contracts' own rule, for both: a suspended partner still prepares its claim; its stake is refused with
    the vault's error by prepare and by the relay alike, and nothing is sent."""
    alpha, coordinator = service.alpha, service.roles.coordinator.address
    receipt = service.tx.transact(service.d.partners.functions.suspend(alpha.address, b"\x04" * 32), coordinator)
    try:
        service.wait_block(receipt["blockNumber"])
        claim = _prepare(service, alpha, "RewardVault", "claim", _claim_args(service, alpha))
        assert claim.status_code == 200, claim.text
        stake = _prepare(service, alpha, "RewardVault", "stake", [service.agreement_id, 1])
        assert stake.status_code == 409 and stake.json()["error"]["code"] == "RewardVaultPartnerNotApproved"
        data = service.d.vault.encode_abi("stake", args=[service.agreement_id, 1])
        before = _nonce(service, alpha)
        relayed = service.api.post(
            "/v1/transactions", json={"raw": _signed(alpha, claim.json(), data=data)}, headers=service.headers(alpha)
        )
        assert relayed.status_code == 409 and relayed.json()["error"]["code"] == "RewardVaultPartnerNotApproved"
        assert _nonce(service, alpha) == before
    finally:
        receipt = service.tx.transact(service.d.partners.functions.approve(alpha.address), coordinator)
    service.wait_block(receipt["blockNumber"])
