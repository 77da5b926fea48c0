"""Sending transactions with the sender's own key: explicit nonces, receipts, decoded custom errors.

Every transaction is signed locally by the account that acts (a partner signs its own), never by an
unlocked node account, so the same code works against anvil and against any RPC endpoint.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from eth_abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError
from web3.types import Nonce, TxParams, TxReceipt

from ..errors import ChainError, ConfigurationError, ContractReverted
from ..units import (
    EPSILON_DECIMALS,
    TOKEN_DECIMALS,
    AgreementStatus,
    ChainEnum,
    ChallengeStatus,
    PartnerStatus,
    ResultsChallengeStatus,
)
from .artifacts import Artifact, error_abis
from .signing import sign_transaction


def decode_revert(data: str | bytes | None) -> ContractReverted | None:
    """Decodes revert data into the contract's custom error, or None when it is not one we know."""
    if not data:
        return None
    raw = HexBytes(data)
    abi = error_abis().get(bytes(raw[:4]))
    if abi is None:
        return None
    types = [item["type"] if item["type"] != "tuple" else _tuple_type(item) for item in abi["inputs"]]
    values = abi_decode(types, bytes(raw[4:]))
    args = {
        item["name"] or f"arg{i}": _plain(item["type"], v) for i, (item, v) in enumerate(zip(abi["inputs"], values))
    }
    return ContractReverted(abi["name"], args)


# Argument names of the contracts' custom errors that hold a chain time, an amount of the reward token (18
# decimals) or a fixed-point epsilon (1e6 = 1.0): how people read them.
_TIME_ARGS = {"deadline", "answerBy", "endsAt", "expiresAt", "claimableAt", "abandonableAt", "start", "end"}
_TOKEN_ARGS = {"staked", "requested", "unallocated", "amount", "total", "claimed", "rewardPerRound"}
_EPSILON_ARGS = {"spent", "cap", "previous", "committed"}
_STATUS_ARGS: dict[str, type[ChainEnum]] = {
    "AgreementRegistryInvalidStatus": AgreementStatus,
    "PartnerRegistryInvalidStatus": PartnerStatus,
    "ResultsCourtChallengeNotOpen": ResultsChallengeStatus,
    "RoundLedgerInvalidChallengeStatus": ChallengeStatus,
}


def utc_text(timestamp: int) -> str:
    """A chain timestamp as people read it: ``2026-12-06 03:05:28 UTC``."""
    from datetime import UTC, datetime

    try:
        return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (ValueError, OverflowError, OSError):  # past year 9999 (a clock moved that far, or "never": 2**256-1)
        return f"unix time {timestamp}"


def fixed_point_text(value: int, decimals: int) -> str:
    """Unsigned `value` / 10**`decimals`, exact and without an exponent, at any size (``:g`` prints 10000001 / 1e6
    as ``10``, so a refusal's spent and cap could read alike)."""
    whole, fraction = divmod(value, 10**decimals)
    return f"{whole}.{fraction:0{decimals}d}".rstrip("0").rstrip(".")


def human_revert(exc: ContractReverted) -> str:
    """`exc` with its arguments in human units: times as UTC dates, token amounts in whole tokens, epsilons
    as decimals, enum values by name (``RoundLedgerAnswerWindowOpen(answerBy=2026-12-06 07:00:00 UTC)``)."""
    statuses = _STATUS_ARGS.get(exc.error)
    rendered = []
    for name, value in exc.args_by_name.items():
        if isinstance(value, int) and not isinstance(value, bool):
            if name in _TIME_ARGS:
                value = utc_text(value)
            elif name in _TOKEN_ARGS:
                value = f"{fixed_point_text(value, TOKEN_DECIMALS)} tokens"
            elif name in _EPSILON_ARGS:
                value = f"epsilon {fixed_point_text(value, EPSILON_DECIMALS)}"
            elif name == "status" and statuses and value < len(statuses):
                value = str(statuses(value))
        rendered.append(f"{name}={value}")
    where = f"{exc.contract}: " if exc.contract else ""
    return f"{where}{exc.error}({', '.join(rendered)})"


def _tuple_type(item: dict[str, Any]) -> str:
    return "(" + ",".join(c["type"] for c in item["components"]) + ")"


def _plain(abi_type: str, value: Any) -> Any:
    if abi_type == "address":
        return Web3.to_checksum_address(value)
    return "0x" + value.hex() if isinstance(value, bytes) else value


def node_request(w3: Web3, method: str, params: list[Any]) -> dict[str, Any]:
    """The node's JSON-RPC answer to one request, asked of the provider and left unformatted: ``result`` or
    ``error``. An answer with neither (or both, or not an object) reads as an error, whose message says so."""
    from web3.types import RPCEndpoint

    answer = w3.provider.make_request(RPCEndpoint(method), params)
    if isinstance(answer, dict) and ("result" in answer) != ("error" in answer):
        return cast(dict[str, Any], answer)
    return {"error": {"message": f"not a JSON-RPC answer to {method}: {str(answer)[:200]}"}}


def error_text(answer: dict[str, Any]) -> Any:
    """What a :func:`node_request` error answer says: its message, else the error itself."""
    error = answer["error"]
    return error.get("message") or error if isinstance(error, dict) else error


@dataclass(frozen=True)
class SignedTx:
    """A transaction signed but not necessarily sent: what a durable outbox stores before broadcasting.

    Rebroadcasting the same `raw` bytes is always safe: the nonce makes it the same transaction, executed once.
    """

    sender: str
    nonce: int
    tx_hash: HexBytes
    raw: HexBytes


GAS_MARGIN = 1.25  # estimates run against one block and mine in the next: seen 260,087 estimated, 258,873 used
RECEIPT_POLL_FIRST = 0.001  # seconds before the second ask for a receipt: anvil mines in about a millisecond
RECEIPT_POLL_MAX = 0.1  # the longest pause between asks (web3's fixed one): a slow chain costs a few more asks


class Transactor:
    """Signs and sends transactions for a set of local accounts, tracking each sender's nonce.

    Gas, unless the caller gives it, is the node's estimate times ``GAS_MARGIN`` (capped at the block gas limit):
    a transaction's cost can change between the block it is estimated on and the one it is mined in (a storage
    slot written from zero or rewritten, a timestamp-dependent branch), and an exact estimate then fails with
    out-of-gas now and then (seen on finalizeRound). Unused gas is not charged.
    """

    def __init__(self, w3: Web3, accounts: Iterable[LocalAccount] = (), *, receipt_timeout: float = 120) -> None:
        self.w3 = w3
        self.chain_id = w3.eth.chain_id
        self.receipt_timeout = receipt_timeout
        self._accounts: dict[str, LocalAccount] = {}
        self._nonces: dict[str, int] = {}
        for account in accounts:
            self.add(account)

    def add(self, account: LocalAccount) -> str:
        """Adds an account whose key may sign; returns its checksummed address."""
        self._accounts[account.address] = account
        return account.address

    def transact(self, call: ContractFunction, sender: str, *, gas: int | None = None) -> TxReceipt:
        """Sends `call` from `sender` and waits for its receipt. A nonce the node calls too low (another process
        or transactor sent from `sender` meanwhile) was not used by this transaction: it is re-read from the
        chain and the transaction built and sent once more.

        Raises:
            ConfigurationError: no key for `sender` was added.
            ContractReverted: the contract refused, with its custom error decoded.
            ChainError: the transaction failed otherwise.
        """
        try:
            return self._transact_once(call, sender, gas)
        except Exception as exc:
            if "nonce too low" not in str(exc).lower():
                raise
            self._nonces.pop(sender, None)
            return self._transact_once(call, sender, gas)

    def _transact_once(self, call: ContractFunction, sender: str, gas: int | None) -> TxReceipt:
        params: TxParams = {"from": sender, "chainId": self.chain_id}
        if gas is not None:
            params["gas"] = gas
        try:
            params["nonce"] = Nonce(self._nonce(sender))
            tx = call.build_transaction(params)  # estimates gas, so a refusal surfaces here, before signing
        except (ContractCustomError, ContractLogicError) as exc:
            raise decode_revert(getattr(exc, "data", None)) or ChainError(str(exc)) from None
        if gas is None:
            tx["gas"] = self._with_margin(tx["gas"])
        return self._send(tx, sender)

    def deploy(self, artifact: Artifact, *args: Any, sender: str) -> Contract:
        """Deploys `artifact` with constructor `args` from `sender`; returns the bound contract."""
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        tx = factory.constructor(*args).build_transaction(
            {"from": sender, "chainId": self.chain_id, "nonce": self._nonce(sender)}
        )
        tx["gas"] = self._with_margin(tx["gas"])
        receipt = self._send(tx, sender)
        address = receipt["contractAddress"]
        if address is None:
            raise ChainError(f"deploying {artifact.name} created no contract")
        return self.w3.eth.contract(address=address, abi=artifact.abi)

    def sign(self, tx: dict[str, Any], sender: str, *, nonce: int | None = None) -> SignedTx:
        """Signs `tx` (``to``, ``data``, optional ``value`` and ``gas``) from `sender` without sending it.

        The nonce is `nonce` when given, else the next one this transactor tracks for `sender`; either way the
        tracked nonce moves past it, since a signed transaction may be broadcast later.

        Raises:
            ConfigurationError: no key for `sender` was added.
            ContractReverted: gas estimation shows the contract would refuse, with its custom error decoded.
            ChainError: gas estimation failed otherwise.
        """
        # Imported here: a web3 internal (what build_transaction uses to fill gas, fees and chain id).
        from web3._utils.transactions import fill_transaction_defaults

        account = self._account(sender)
        params: dict[str, Any] = {**tx, "from": sender, "chainId": self.chain_id}
        params["nonce"] = self._nonce(sender) if nonce is None else nonce
        try:
            filled = dict(fill_transaction_defaults(self.w3, params))
        except (ContractCustomError, ContractLogicError) as exc:
            raise decode_revert(getattr(exc, "data", None)) or ChainError(str(exc)) from None
        filled.pop("from", None)
        if "gas" not in tx:
            filled["gas"] = self._with_margin(filled["gas"])
        raw, tx_hash = sign_transaction(account, filled)
        self._nonces[sender] = max(self._nonces.get(sender, 0), params["nonce"] + 1)
        return SignedTx(sender=sender, nonce=params["nonce"], tx_hash=HexBytes(tx_hash), raw=HexBytes(raw))

    def send_raw(self, raw: bytes) -> HexBytes:
        """Broadcasts an already signed transaction; returns its hash.

        Raises:
            ChainError: the node refused it (other than as a transaction it already knows).
        """
        from eth_utils import keccak
        from web3.exceptions import TransactionNotFound

        tx_hash = HexBytes(keccak(bytes(raw)))
        answer = node_request(self.w3, "eth_sendRawTransaction", [HexBytes(raw).to_0x_hex()])
        if "error" not in answer:
            return tx_hash  # what the node answers is this hash, the bytes' own
        try:  # nodes word "already known" differently: ask if they have it
            self.w3.eth.get_transaction(tx_hash)
        except TransactionNotFound:
            raise ChainError(f"node refused transaction {tx_hash.to_0x_hex()}: {error_text(answer)}") from None
        return tx_hash

    def wait(self, tx_hash: bytes, *, timeout: float | None = None) -> TxReceipt:
        """Waits for the receipt of `tx_hash`: asks at once, then after 1 ms, doubling the pause up to 100 ms.
        (web3's own wait pauses 100 ms before its second ask: a transaction anvil mines in a millisecond waited a
        hundred.)

        Raises:
            ChainError: no receipt within `timeout` (default: this transactor's receipt timeout).
        """
        limit = timeout or self.receipt_timeout
        deadline = time.monotonic() + limit
        pause = RECEIPT_POLL_FIRST
        while True:
            receipt = self.receipt(HexBytes(tx_hash))
            if receipt is not None:
                return receipt
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChainError(f"no receipt for {HexBytes(tx_hash).to_0x_hex()} within {limit} s")
            time.sleep(min(pause, left))
            pause = min(2 * pause, RECEIPT_POLL_MAX)

    def receipt(self, tx_hash: HexBytes) -> TxReceipt | None:
        """The receipt of `tx_hash` as web3 formats it, or None while the node has not mined it.

        Asked of the provider directly and formatted with web3's receipt formatter: web3's request path (its
        middlewares, the formatters looked up per method) spent ~0.5 ms of CPU more on every receipt. An error
        answer is asked again through web3, which raises it as web3 does."""
        from web3._utils.method_formatters import receipt_formatter
        from web3.datastructures import AttributeDict
        from web3.exceptions import TransactionIndexingInProgress, TransactionNotFound

        answer = node_request(self.w3, "eth_getTransactionReceipt", [tx_hash.to_0x_hex()])
        if "error" not in answer:
            result = answer.get("result")
            return None if result is None else cast(TxReceipt, AttributeDict.recursive(receipt_formatter(result)))
        try:
            return self.w3.eth.get_transaction_receipt(tx_hash)
        except (TransactionNotFound, TransactionIndexingInProgress):
            return None

    def _send(self, tx: TxParams, sender: str) -> TxReceipt:
        account = self._account(sender)
        raw, _ = sign_transaction(account, cast(dict[str, Any], tx))
        tx_hash = self.send_raw(raw)
        self._nonces[sender] = tx["nonce"] + 1
        receipt = self.wait(tx_hash)
        if receipt["status"] != 1:
            raise ChainError(f"transaction {tx_hash.hex()} from {sender} failed (status 0)")
        return receipt

    def _with_margin(self, estimate: int) -> int:
        padded = int(estimate * GAS_MARGIN)
        if padded > 10_000_000:  # rarely: only then is the block gas limit worth a request
            padded = min(padded, int(self.w3.eth.get_block("latest")["gasLimit"]))
        return max(padded, int(estimate))

    def _nonce(self, sender: str) -> int:
        self._account(sender)
        if sender not in self._nonces:
            self._nonces[sender] = self.w3.eth.get_transaction_count(cast(ChecksumAddress, sender), "pending")
        return self._nonces[sender]

    def _account(self, sender: str) -> LocalAccount:
        try:
            return self._accounts[sender]
        except KeyError:
            raise ConfigurationError(f"no key for {sender}: nobody acts for an account without its key") from None
