"""The audit, end to end: :func:`audit_deployment` (a live deployment: a Web3, its addresses, a store, the
auditor's X25519 key) and :func:`audit_workdir` (a folder left by ``lepton-ledger demo``, on a copy of its
chain state, so that the audit changes nothing).

For every round verified by an earlier audit (kept in the audit state), every artifact the chain anchors is
re-fetched and re-hashed (``cids_resolve``, ``batch_document``), its other checks taken from that audit; a
round that fails this is forgotten, so the next audit examines it in full. For every round that has ended and is
not yet verified, or was voided since (all of them with ``full=True``), in order: the batch
documents of its anchored commitments (``batch_document``), every artifact its digests name
(``cids_resolve``: global model, envelopes, report, aggregate), every envelope (``envelope_decrypts``,
``manifest_signature``), every partner's epsilon (``epsilon_recomputed``, ``epsilon_within_cap``), and for a
finalized round the report's rules against the signed terms document's (``rules_as_signed``) and the report
against what re-derives by them (``rejections_recheck``, ``aggregate_recomputed``,
``scores_and_payouts``). Then the global checks, every time: ``vault_conserves`` and ``event_history``.

A check that cannot run because an input it needs failed another check (an envelope that does not resolve
leaves that update's signature, epsilon, and the round's aggregate unexamined) is not reported as passed or
failed: the failed checks of that round list it in their evidence under ``not_checked``.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from eth_typing import ChecksumAddress
from web3 import Web3
from web3.contract.contract import ContractFunctions

from ..chain.anvil import Anvil
from ..chain.deployment import CONTRACTS
from ..chain.state import Partner
from ..envelope.format import DEFAULT_MAX_ENVELOPE_BYTES
from ..envelope.tensors import deserialize_tensors
from ..errors import ConfigurationError, LeptonError
from ..fl.data import make_federated
from ..fl.models import model_names
from ..protocol.jsonio import FILE_BYTES, load_object, read_bounded
from ..rounds.report import fetch_by_digest
from ..storage.local import LocalStore
from ..storage.store import Store
from ..units import RoundStatus, fixed_to_epsilon
from .chain_view import ChainView, Commitment, RoundRecord, digest_bytes
from .checks.artifacts import expand_batch, resolve
from .checks.books import check_bonds, check_vault
from .checks.history import check_event_history
from .checks.privacy import check_epsilon, dp_entry
from .derive import DerivedRound, RoundDeriver, RoundTask
from .model import (
    BATCH_DOCUMENT,
    AuditResult,
    CheckResult,
    PartnerLine,
    RoundSummary,
)
from .state import AuditState, deployment_key
from .workers import AuditWorkerDied, RoundWorkers, Where, default_workers

__all__ = ["AuditCannotRun", "audit_deployment", "audit_workdir", "default_state_path", "load_auditor_key"]

RECHECK_SCOPE = "re-fetched and re-hashed; the round's other checks were verified by an earlier audit"


class AuditCannotRun(LeptonError, RuntimeError):
    """The audit could not start: a missing or malformed input (folder, deployment file, key), or no chain."""


def default_state_path() -> Path:
    """``data_dir() / "audit" / "state.sqlite"``: one file for every deployment audited from this machine."""
    from ..settings import data_dir

    return data_dir() / "audit" / "state.sqlite"


def load_auditor_key(path: Path) -> bytes:
    """The auditor's X25519 private key from a JSON file: ``{"x25519_private_key": hex}``, or a demo's
    ``keys/dev-keys.json`` (its ``parties.auditor`` entry).

    Raises:
        AuditCannotRun: the file is missing, not JSON, or holds no 32-byte key.
    """
    try:
        doc = load_object(read_bounded(Path(path), FILE_BYTES), what=f"key file {path}", max_bytes=FILE_BYTES)
        entry = doc["parties"]["auditor"] if "parties" in doc else doc
        key = bytes.fromhex(str(entry["x25519_private_key"]).removeprefix("0x"))
    except FileNotFoundError:
        raise AuditCannotRun(f"key file {path} does not exist") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise AuditCannotRun(f"key file {path} holds no x25519_private_key (hex): {exc!r}") from None
    if len(key) != 32:
        raise AuditCannotRun(f"key file {path}: an X25519 private key is 32 bytes, got {len(key)}")
    return key


def audit_workdir(
    workdir: Path, *, state_path: Path | None = None, full: bool = False, workers: int | None = None
) -> AuditResult:
    """Audits a folder left by ``lepton-ledger demo``: restarts its chain from a copy of ``chain-state.json``
    (the folder's file is never written), reads its ``store/`` and the auditor key in ``keys/dev-keys.json``,
    and rebuilds the evaluation set from ``deployment.json``'s ``eval_set``. Its state (which rounds are verified)
    stays with the folder it audits: `state_path`, default ``workdir / "audit" / "state.sqlite"``. `workers`: as
    :func:`audit_deployment`'s.

    Raises:
        AuditCannotRun: the folder lacks one of those, or they are malformed.
        ToolchainError: anvil cannot start.
    """
    workdir = Path(workdir)
    try:
        deployment = load_object(
            read_bounded(workdir / "deployment.json", FILE_BYTES), what="deployment.json", max_bytes=FILE_BYTES
        )
        state_file = workdir / deployment.get("state_file", "chain-state.json")
        store_dir = workdir / deployment.get("store", "store")
        keys = workdir / deployment.get("keys", "keys") / "dev-keys.json"
    except FileNotFoundError:
        raise AuditCannotRun(f"{workdir} has no deployment.json: not a demo folder") from None
    except (ValueError, TypeError) as exc:  # not JSON, too large or deep, or a path that is not a string
        raise AuditCannotRun(f"{workdir / 'deployment.json'} is not a demo's deployment document: {exc}") from None
    for path, what in ((state_file, "chain state file"), (store_dir / "blocks", "block store")):
        if not path.exists():
            raise AuditCannotRun(f"{workdir} has no {what} ({path})")
    key = load_auditor_key(keys)
    store = LocalStore(store_dir, durable=False)
    # The chain runs on a copy of the state file: anvil writes its state back when it stops, and the folder's
    # chain must stay as it was (ignore_cleanup_errors: the node may still be writing the copy as it goes).
    with tempfile.TemporaryDirectory(prefix="lepton-audit-", ignore_cleanup_errors=True) as tmp:
        copy = Path(tmp) / "chain-state.json"
        shutil.copyfile(state_file, copy)
        anvil = Anvil(state_file=copy, chain_id=int(deployment.get("chain_id", 31337)))
        w3 = anvil.start()
        try:
            return audit_deployment(
                w3,
                deployment_contracts(deployment),
                store,
                key,
                eval_set_spec=deployment.get("eval_set"),
                model_name=deployment.get("model", "logreg"),
                state_path=state_path or workdir_state_path(workdir),
                full=full,
                names=_dev_names(keys),
                workers=workers,
            )
        finally:
            anvil.kill()  # the copy is thrown away: waiting for the node to write it back took over a second


def workdir_state_path(workdir: Path) -> Path:
    """Where a ``--workdir`` audit keeps its state: inside that folder, never in the global data dir."""
    return Path(workdir) / "audit" / "state.sqlite"


def _dev_names(keys: Path) -> dict[str, str]:
    """``{address: name}`` of a demo's parties (``keys/dev-keys.json``), to name partners in the report."""
    try:
        parties = load_object(read_bounded(keys, FILE_BYTES), what=str(keys), max_bytes=FILE_BYTES)["parties"]
        return {str(entry["address"]): str(who) for who, entry in parties.items()}
    except (OSError, LeptonError, KeyError, TypeError, AttributeError):
        return {}


def deployment_contracts(deployment: dict[str, Any]) -> dict[str, str]:
    """The contract addresses of a deployment document (``deployment.json``'s ``contracts``).

    Raises:
        AuditCannotRun: a contract is missing.
    """
    contracts = deployment.get("contracts") or {}
    missing = [name for name in CONTRACTS if name not in contracts]
    if missing:
        raise AuditCannotRun(f"the deployment names no address for {', '.join(missing)}")
    return {name: contracts[name] for name in CONTRACTS}


def audit_deployment(
    w3: Web3,
    deployment_addresses: dict[str, str],
    store: Store,
    auditor_x25519_private: bytes,
    *,
    eval_set_spec: dict[str, Any] | None,
    state_path: Path | None = None,
    full: bool = False,
    model_name: str = "logreg",
    names: dict[str, str] | None = None,
    workers: int | None = None,
) -> AuditResult:
    """Audits a deployment from the chain `w3` reaches, the `store` its artifacts are in and the auditor's key.

    `eval_set_spec` is the ``fl.make_federated`` arguments that rebuild the held-out evaluation set
    (``{"dataset", "num_partners", "seed", "alpha", "eval_fraction"}``); `model_name` the ``fl.build_model``
    name of the global model. `state_path` (default :func:`default_state_path`) keeps which rounds were
    verified; `full` forgets them first. Partners are named for people (the report's plots) by `names`, else by
    the ``name`` of their registered profile when the store holds it. `workers` processes derive the rounds
    (``derive``, ``workers.RoundWorkers``; default one a core, 1: all in this process); the result and the state
    are the same.

    Raises:
        AuditCannotRun: a malformed key or spec, an address without code, or a worker process that died.
    """
    key = bytes(auditor_x25519_private)
    if len(key) != 32:
        raise AuditCannotRun(f"an X25519 private key is 32 bytes, got {len(key)}")
    if not isinstance(eval_set_spec, dict) or "dataset" not in eval_set_spec:
        raise AuditCannotRun(f"eval_set_spec must give the make_federated arguments, got {eval_set_spec!r}")
    if model_name not in model_names():
        raise AuditCannotRun(f"unknown model {model_name!r}; known: {', '.join(model_names())}")
    addresses = deployment_contracts({"contracts": deployment_addresses})
    block = int(w3.eth.block_number)
    for name, address in addresses.items():
        if not w3.eth.get_code(cast(ChecksumAddress, address), block_identifier=block):
            raise AuditCannotRun(f"{name} at {address} has no code on chain {w3.eth.chain_id} at block {block}")
    # Block 1, not the genesis: anvil adds a fresh genesis to its state file at every restart and may serve any
    # of them as block 0, while block 1 and later keep their hashes.
    first = w3.eth.get_block(min(1, block))["hash"].to_0x_hex()
    state = AuditState(
        state_path or default_state_path(), deployment_key(int(w3.eth.chain_id), addresses["RoundLedger"], first)
    )
    eval_set = rebuild_eval_set(eval_set_spec)  # before anything is recorded: a bad spec changes nothing
    if full:
        state.reset()
    view = ChainView(w3, addresses, state.events_path, block)
    deriver = RoundDeriver(store, key, eval_set, model_name)
    auditor = _RoundAuditor(view, deriver, state)
    verified = state.verified()
    result = AuditResult(view.chain_id, addresses, block)
    summaries = dict(verified)
    # The plan first (every round in order: re-checked, or audited with its commitments), so that the workers can
    # derive the rounds to audit ahead of the audit, which records them one round after the other.
    plan: list[tuple[RoundRecord, tuple[list[CheckResult], RoundTask] | None, _History]] = []
    for a in view.agreement_ids():
        history = _History(state.dp_history(a), view.committed_rounds(a))
        for record in view.rounds(a):
            if record.status is RoundStatus.OPEN:
                continue  # checked once it ends
            # Verified and not voided since (a round voided after finalization is audited again, in full).
            known = verified.get((a, record.round))
            if known is not None and known.block == last_change(view, record):
                plan.append((record, None, history))
            else:
                checks, commitments = auditor.commitments(record)
                plan.append((record, (checks, auditor.task(record, commitments)), history))
    tasks = [found[1] for _, found, _ in plan if found is not None]
    try:
        with RoundWorkers(view, tasks, default_workers() if workers is None else workers, deriver.derive) as pool:
            for record, found, history in plan:
                a = record.agreement_id
                if found is None:
                    checks = auditor.recheck_artifacts(record)
                    result.checks += checks
                    result.rounds_rechecked.append((a, record.round))
                    if not all(c.ok for c in checks):
                        state.forget_round(a, record.round)  # the next audit examines it in full again
                    continue
                batch_checks, task = found
                checks, summary = auditor.audit_round(task, history, batch_checks, pool.take(task))
                result.checks += checks
                result.rounds_checked.append((a, record.round))
                summaries[(a, record.round)] = summary
                if all(c.ok for c in checks):
                    state.record_round(summary, block)
    except AuditWorkerDied as exc:
        raise AuditCannotRun(str(exc)) from None
    result.checks += check_vault(view) + check_bonds(view) + check_event_history(view)
    result.rounds = [summaries[k] for k in sorted(summaries)]
    _for_people(result.rounds, view, auditor, names or {})
    return result


def _for_people(rounds: list[RoundSummary], view: ChainView, auditor: _RoundAuditor, names: dict[str, str]) -> None:
    """Names each partner line and gives each agreement's first round the accuracy of the model it started from,
    where the plots start. Only for reading: a name or a model that cannot be had is left out, never a failure."""
    registry = view.deployment.partners.functions
    known: dict[str, str | None] = dict(names)
    for summary in rounds:
        for partner, line in summary.partners.items():
            if partner not in known:
                known[partner] = _profile_name(registry, auditor.store, partner)
            line.name = known[partner]
    for summary in rounds:
        if summary.round != min(r.round for r in rounds if r.agreement_id == summary.agreement_id):
            continue
        try:
            digest = next(r.model_digest for r in view.rounds(summary.agreement_id) if r.round == summary.round)
            summary.accuracy_before = float(
                auditor.deriver.evaluation.accuracy(deserialize_tensors(fetch_by_digest(auditor.store, digest)))
            )
        except Exception:  # noqa: BLE001 -- no base model to evaluate: the plot starts at round 1
            summary.accuracy_before = None


def _profile_name(registry: ContractFunctions, store: Store, partner: str) -> str | None:
    try:
        digest = Partner.read(registry.partnerOf(partner)).profile_digest
        name = load_object(
            fetch_by_digest(store, digest, max_bytes=FILE_BYTES), what="profile", max_bytes=FILE_BYTES
        ).get("name")
    except Exception:  # noqa: BLE001 -- a profile that is not in the store or not JSON: unnamed
        return None
    return name if isinstance(name, str) else None


def rebuild_eval_set(spec: dict[str, Any]) -> Any:
    """The held-out evaluation set from its ``fl.make_federated`` arguments.

    Raises:
        AuditCannotRun: the arguments are missing or do not rebuild a set.
    """
    try:
        split = make_federated(
            spec["dataset"],
            num_partners=int(spec["num_partners"]),
            seed=int(spec.get("seed", 0)),
            alpha=spec.get("alpha"),
            eval_fraction=float(spec.get("eval_fraction", 0.2)),
            sizes=spec.get("sizes"),
        )
    except (ConfigurationError, KeyError, TypeError, ValueError) as exc:
        raise AuditCannotRun(f"the evaluation set spec {spec} does not rebuild: {exc!r}") from None
    return split.eval_set


def last_change(view: ChainView, record: RoundRecord) -> int:
    """The block of a round's last change on-chain: its opening, its end, or a batch entry of it voided since (a
    round voided, or an entry of it voided, after an audit verified it is audited again, in full)."""
    changes = [e.block_number for e in (record.opened, record.finalized, record.voided) if e is not None]
    changes += [
        e.block_number
        for e in view.events("DisputedEntryVoided", agreement_id=record.agreement_id)
        if int(e.args["round"]) == record.round
    ]
    return max(changes)


@dataclass
class _History:
    """An agreement's DP parameters by partner and round (filled as rounds are audited), and the rounds each
    partner committed to."""

    dp: dict[str, dict[int, dict[str, Any]]]
    committed: dict[str, list[int]]


class _RoundAuditor:
    """Audits one ended round at a time (the module docstring lists the order): reads the chain, composes each
    partner's epsilon, and puts together what `deriver` derived of the round (``derive``, in a worker)."""

    def __init__(self, view: ChainView, deriver: RoundDeriver, state: AuditState) -> None:
        self.view, self.deriver, self.state, self.store = view, deriver, state, deriver.store

    def task(self, record: RoundRecord, commitments: list[Commitment]) -> RoundTask:
        """What deriving `record` needs of the chain."""
        a, r = record.agreement_id, record.round
        allocation = next((e.args for e in self.view.events("Allocated", agreement_id=a, round=r)), None)
        return RoundTask(record, commitments, self.view.terms(a, record.version), allocation)

    def commitments(self, record: RoundRecord) -> tuple[list[CheckResult], list[Commitment]]:
        """The round's commitments in chain order (a batch's in its document's order), as the coordinator
        takes them; anchored ones only from batch documents that verify."""
        checks: list[CheckResult] = []
        singles = {e.tx_hash + f":{e.log_index}": c for e, c in zip(record.singles, record.single_commitments())}
        commitments: list[Commitment] = []
        voided = {p for r, p in self.view.voided_entries(record.agreement_id) if r == record.round}
        for e in sorted([*record.singles, *record.batches], key=lambda e: (e.block_number, e.log_index)):
            if e.event == "UpdateSubmitted":
                commitments.append(singles[e.tx_hash + f":{e.log_index}"])
            elif set(self.view.batch_parties(record.agreement_id, e)) <= voided:
                # Every entry was disputed by its party and voided on-chain: nothing of the batch stands, so its
                # document (a dishonest coordinator may never have published one) is not needed.
                checks.append(
                    CheckResult(
                        BATCH_DOCUMENT,
                        True,
                        "every entry of this batch was disputed by its "
                        "party and voided on-chain: no update of it stands",
                        record.agreement_id,
                        record.round,
                        None,
                        None,
                        {
                            "tx_hash": e.tx_hash,
                            "block": e.block_number,
                            "batch_index": e.args["batchIndex"],
                            "voided": sorted(voided),
                        },
                    )
                )
            else:
                results, batch = expand_batch(self.view, self.store, record, e)
                checks += results
                commitments += [c for c in batch if c.partner not in voided]  # a voided entry is no update
        return checks, commitments

    def recheck_artifacts(self, record: RoundRecord) -> list[CheckResult]:
        """An earlier audit verified `record`: its semantics are not recomputed, but every artifact the chain
        anchors for it (batch documents, global model, envelopes, report, aggregate) is re-fetched and re-hashed
        (``cids_resolve``, and ``batch_document`` for what a batch document lists), so that a lost or changed
        artifact fails, naming round, partner and CID."""
        a, r = record.agreement_id, record.round
        checks, commitments = self.commitments(record)
        checks.append(
            resolve(
                self.store, record.model_digest, what="global model", agreement_id=a, round_id=r, event=record.opened
            ).check
        )
        if record.finalized is not None:
            for what, name in (("round report", "reportDigest"), ("aggregate model", "aggregateDigest")):
                checks.append(
                    resolve(
                        self.store,
                        digest_bytes(record.finalized.args[name]),
                        what=what,
                        agreement_id=a,
                        round_id=r,
                        event=record.finalized,
                    ).check
                )
        for c in commitments:
            checks.append(
                resolve(
                    self.store,
                    c.envelope_digest,
                    what="envelope",
                    agreement_id=a,
                    round_id=r,
                    partner=c.partner,
                    event=Where(c.tx_hash, c.block),
                    max_bytes=DEFAULT_MAX_ENVELOPE_BYTES,
                ).check
            )
        for check in checks:
            check.evidence["scope"] = RECHECK_SCOPE
        return checks

    def audit_round(
        self, task: RoundTask, history: _History, batch_checks: list[CheckResult], derived: DerivedRound
    ) -> tuple[list[CheckResult], RoundSummary]:
        """Every check of one ended round: its batch documents' (`batch_checks`), what was `derived` of it, and
        each partner's epsilon, composed over the DP history of its earlier rounds (recorded as it goes)."""
        record, terms = task.record, task.terms
        a, r = record.agreement_id, record.round
        checks = [*batch_checks, *derived.head]
        not_checked: list[str] = []
        epsilons: dict[str, float] = {}
        for c, update in zip(task.commitments, derived.updates):
            p = c.partner
            checks += [update.sample_count, update.fetch]
            if not update.resolved:
                not_checked.append(f"envelope_decrypts, manifest_signature, epsilon_recomputed of {p}")
                continue
            checks += update.results
            if update.manifest is None:
                not_checked.append(f"epsilon_recomputed of {p} (its manifest cannot be trusted)")
                continue
            entry = dp_entry(update.manifest)
            history.dp.setdefault(p, {})[r] = entry
            self.state.record_dp(a, p, r, entry)
            earlier = [x for x in history.committed.get(p, []) if x < r]
            missing = [x for x in earlier if x not in history.dp.get(p, {})]
            if missing:
                not_checked.append(f"epsilon_recomputed of {p} (DP parameters of round(s) {missing} unknown)")
                continue
            results, epsilons[p] = check_epsilon(
                c, update.cid, update.manifest, [history.dp[p][x] for x in earlier], terms
            )
            checks += results
        checks += derived.tail
        not_checked += derived.not_checked
        if not_checked:
            for check in checks:
                if not check.ok:
                    check.evidence["not_checked"] = list(not_checked)
        return checks, self._summary(task, derived, epsilons)

    def _summary(self, task: RoundTask, derived: DerivedRound, epsilons: dict[str, float]) -> RoundSummary:
        record, lines, cap = task.record, derived.lines, task.terms.epsilon_cap
        partners = {
            c.partner: PartnerLine(
                cumulative_epsilon=epsilons.get(c.partner, fixed_to_epsilon(c.cumulative_epsilon)),
                epsilon_cap=cap,
                payout=int(lines.get(c.partner, {}).get("payout", 0)),
                accepted=bool(lines.get(c.partner, {}).get("accepted", False)),
            )
            for c in task.commitments
        }
        return RoundSummary(
            record.agreement_id,
            record.round,
            derived.accuracy,
            self.view.gas_used(record.agreement_id, record.round),
            last_change(self.view, record),
            partners,
        )
