"""A session on one deployment: the chain, the bound contracts of a deployment file, a signing identity and the
store, and the checks every party's step makes before it sends (an agreement that exists, a party, a round,
ether for gas). The commands (commands/context.py opens one from their flags) and the ledger service (its
coordinator's key) take their steps through it. A refusal is a ``CommandError`` naming what was wrong,
raised before anything is sent.

Deployment file (what ``lepton-ledger deploy`` writes): ``chain_id``, ``contracts``, and ``reward_token``,
``coordinator``, ``auditors``, ``dispute_window``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from .. import settings
from ..chain.state import AgreementState
from ..errors import CommandError
from ..protocol.errors import DocumentTooLarge
from ..protocol.jsonio import FILE_BYTES, load_json, read_bounded

__all__ = [
    "CommandError",
    "Session",
    "bind_deployment",
    "default_deployment_path",
    "load_deployment_document",
    "no_gas_message",
    "parse_address",
    "parse_tokens",
    "read_call",
    "require",
]


def default_deployment_path() -> Path:
    return settings.data_dir() / "deployment.json"


def parse_address(value: str, what: str) -> str:
    """The checksummed form of `value`; CommandError naming `what` when it is not an address."""
    from ..chain._values import InvalidValue, as_address

    try:
        return as_address(value, what)
    except InvalidValue as exc:
        raise CommandError(str(exc)) from None


def parse_tokens(value: str, what: str, *, decimals: int = 18) -> int:
    """A decimal amount of whole tokens ("12.5") in the token's smallest unit; CommandError when malformed,
    negative, or finer than the token's decimals."""
    try:
        amount = Decimal(value) * (10**decimals)
    except InvalidOperation:
        raise CommandError(f"{what} must be a decimal number of tokens, not {value!r}") from None
    if not amount.is_finite() or amount < 0 or amount != amount.to_integral_value():
        raise CommandError(f"{what} must be a non-negative amount with at most {decimals} decimals, not {value!r}")
    return int(amount)


def read_call(call: Any, what: str, *, sender: str | None = None) -> Any:
    """``call.call()`` (as `sender` when given: a dry run of a transaction), with a contract's custom error turned
    into a CommandError that names `what`."""
    from web3.exceptions import ContractCustomError, ContractLogicError

    from ..chain.transactions import decode_revert, human_revert

    try:
        return call.call({"from": sender} if sender else None)
    except (ContractCustomError, ContractLogicError) as exc:
        decoded = decode_revert(getattr(exc, "data", None))
        raise CommandError(f"{what}: {human_revert(decoded) if decoded else exc}") from None


def load_deployment_document(path: Path) -> dict[str, Any]:
    """The deployment file's JSON; CommandError when it is missing or malformed."""
    try:
        document = load_json(read_bounded(path, FILE_BYTES), what=f"deployment file {path}", max_bytes=FILE_BYTES)
    except FileNotFoundError:
        raise CommandError(f"no deployment file at {path} (run `lepton-ledger deploy`, or pass --deployment)") from None
    except DocumentTooLarge as exc:
        raise CommandError(str(exc)) from None
    except (ValueError, UnicodeDecodeError):
        raise CommandError(f"deployment file {path} is not valid JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("contracts"), dict):
        raise CommandError(f'deployment file {path} has no "contracts" member')
    return document


@dataclass
class Session:
    """One command's connection: the Web3, the bound deployment, the signing identity (if any) and the store."""

    w3: Any
    deployment: Any
    document: dict[str, Any]
    deployment_path: Path
    identity: Any = None
    ipfs: str | None = None
    tx: Any = None
    _store: Any = field(default=None, repr=False)

    @property
    def account(self) -> Any:
        """The identity's ``LocalAccount`` (signs transactions and EIP-712 messages)."""
        if self.identity is None:
            raise CommandError("this command needs --key")
        return self.identity.account

    @property
    def address(self) -> str:
        return str(self.account.address)

    @property
    def store(self) -> Any:
        if self._store is None:
            from ..storage import open_store

            # A folder named by --ipfs must be there: a typo would otherwise start an empty store, and every
            # artifact would then read as missing.
            if (
                self.ipfs is not None
                and not self.ipfs.startswith(("http://", "https://"))
                and not Path(self.ipfs).expanduser().is_dir()
            ):
                raise CommandError(f"--ipfs {self.ipfs}: no such folder (a block store folder or a Kubo RPC URL)")
            self._store = open_store(self.ipfs)
        return self._store

    @property
    def ledger_address(self) -> str:
        return str(self.deployment.ledger.address)

    def state_dir(self, kind: str) -> Path:
        """``<data dir>/<kind>/<RoundLedger address>``: local state of this deployment (accountants, event index)."""
        path = settings.data_dir() / kind / self.ledger_address
        path.mkdir(parents=True, exist_ok=True)
        return path

    def accountant_file(self, agreement_id: int, partner: str) -> Path:
        """The file of `partner`'s privacy accountant in `agreement_id` of this deployment
        (``accountant_file.accountant_path``: a folder per chain and RoundLedger under ``<data dir>/accountants``)."""
        from .accountant_file import accountant_path

        path = accountant_path(settings.data_dir() / "accountants", self.w3, self.ledger_address, agreement_id, partner)
        path.parent.mkdir(parents=True, exist_ok=True)  # its lock is taken before the file is first written
        return path

    def token(self, address: str | None = None) -> Any:
        """The ERC-20 at `address` (default: the deployment's reward token)."""
        from ..chain.artifacts import load_artifact

        address = address or self.document.get("reward_token")
        if not address:
            raise CommandError(f"no reward token: pass one, or deploy with --with-token ({self.deployment_path})")
        abi = load_artifact("LeptonToken").abi  # any ERC-20 ABI would do: only balanceOf and approve are used
        return self.w3.eth.contract(address=parse_address(address, "reward token"), abi=abi)

    def agreement_state(self, agreement_id: int) -> AgreementState:
        """``AgreementRegistry.agreementState``; CommandError naming the agreement when it does not exist."""
        if agreement_id < 1:
            raise CommandError(f"agreement ids start at 1, not {agreement_id}")
        return AgreementState.decode(
            read_call(
                self.deployment.agreements.functions.agreementState(agreement_id), f"unknown agreement {agreement_id}"
            )
        )

    def require_party(self, agreement_id: int, address: str) -> None:
        self.agreement_state(agreement_id)
        is_party, _ = self.deployment.agreements.functions.partyIndex(agreement_id, address).call()
        if not is_party:
            raise CommandError(f"{address} is not a party of agreement {agreement_id}")

    def require_round(self, agreement_id: int, round_id: int) -> None:
        """CommandError unless the agreement exists and has opened `round_id` (so a negative id or one past
        uint64 is refused here, not by the ABI encoder)."""
        self.agreement_state(agreement_id)
        count = int(self.deployment.ledger.functions.roundCount(agreement_id).call())
        if not 0 < round_id <= count:
            raise CommandError(f"agreement {agreement_id} has no round {round_id} (it has {count})")

    def require_gas(self) -> None:
        """Refuses, before anything is sent, a signer with no ether to pay gas."""
        if self.w3.eth.get_balance(self.address) == 0:
            raise CommandError(no_gas_message(self.w3, self.address, self.identity.name))


def no_gas_message(w3: Any, address: str, name: str) -> str:
    """Why `address` cannot send, and how it gets ether (on the local node, ``node fund``)."""
    how = (
        f"; on the local node: lepton-ledger node fund --key {name}"
        if not settings.rpc_url() and w3.eth.chain_id == 31337
        else "; send it some ether on that chain"
    )
    return f"{address} ({name}) has no ether to pay gas on chain {w3.eth.chain_id}{how}"


def bind_deployment(w3: Any, document: dict[str, Any], path: Path) -> Any:
    """The ``Deployment`` a deployment file describes, bound to `w3`, after checking it is this chain's (chain id,
    contract code at every address); CommandError otherwise."""
    from ..chain.deployment import CONTRACTS, Deployment

    chain_id = w3.eth.chain_id
    if document.get("chain_id") not in (None, chain_id):
        raise CommandError(f"{path} is a deployment on chain {document['chain_id']}, this node is chain {chain_id}")
    contracts = document["contracts"]
    for name in CONTRACTS:
        if name not in contracts:
            raise CommandError(f"{path} names no {name}")
        address = parse_address(contracts[name], name)
        if not w3.eth.get_code(address):
            raise CommandError(f"no {name} contract at {address} on this chain; is --rpc-url the chain of {path}?")
    bound = Deployment.at(w3, {name: parse_address(contracts[name], name) for name in CONTRACTS})
    _require_linked(bound, path)
    return bound


def _require_linked(d: Any, path: Path) -> None:
    """Checks each address holds the contract its name says, by the links the contracts keep to each other (the
    registry and the ledger know the vault, the vault knows the ledger): a file with swapped or foreign addresses
    is refused here, instead of failing on some later call."""
    vault, ledger = d.vault.address, d.ledger.address
    for name, contract, call, expected in (
        ("PartnerRegistry", d.partners, "suspendedCount", None),
        ("AgreementRegistry", d.agreements, "vault", vault),
        ("RewardVault", d.vault, "roundLedger", ledger),
        ("RoundLedger", d.ledger, "vault", vault),
    ):
        try:
            answer = getattr(contract.functions, call)().call()
        except Exception:  # noqa: BLE001 -- a revert, undecodable output: any of them means "not that contract"
            answer = _NO_ANSWER
        if answer is _NO_ANSWER or (expected is not None and answer != expected):
            raise CommandError(
                f"{path}: the {name} address {contract.address} does not hold this deployment's "
                f"{name} (addresses swapped or from another deployment?)"
            )


_NO_ANSWER = object()


def require(condition: bool, message: str) -> None:
    if not condition:
        raise CommandError(message)
