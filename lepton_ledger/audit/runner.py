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
from functools import cached_property
from pathlib import Path
from typing import Any, cast

import torch
from eth_typing import ChecksumAddress
from web3 import Web3
from web3.contract.contract import ContractFunctions

from ..chain.anvil import Anvil
from ..chain.deployment import CONTRACTS
from ..chain.events import IndexedEvent
from ..chain.state import Partner, Terms
from ..envelope.format import DEFAULT_MAX_ENVELOPE_BYTES
from ..envelope.tensors import deserialize_tensors
from ..errors import ConfigurationError, LeptonError
from ..fl.data import TabularData, eval_commitment, make_federated
from ..fl.models import model_names
from ..protocol.jsonio import FILE_BYTES, load_object, read_bounded
from ..rounds.report import MAX_REPORT_BYTES, fetch_by_digest, load_report
from ..rounds.rules import RoundRules
from ..storage.local import LocalStore
from ..storage.store import Store
from ..units import RoundStatus, fixed_to_epsilon
from .chain_view import ChainView, Commitment, RoundRecord, digest_bytes
from .checks.artifacts import expand_batch, resolve
from .checks.books import check_bonds, check_vault
from .checks.history import check_event_history
from .checks.privacy import check_epsilon, dp_entry
from .checks.rewards import check_scores_and_payouts
from .checks.rules import check_rules_as_signed
from .checks.training import RoundMaterial, recheck_rejections, recompute_aggregate
from .evaluation import RememberingEvaluation
from .model import (
    BATCH_DOCUMENT,
    SAMPLE_COUNT_BOUND,
    AuditResult,
    CheckResult,
    PartnerLine,
    RoundSummary,
)
from .state import AuditState, deployment_key
from .workers import AuditWorkerDied, UpdateOpener, Where, default_workers

__all__ = ["AuditCannotRun", "audit_deployment", "audit_workdir", "default_state_path", "load_auditor_key"]

REPORT_VERSION = 1
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
    the ``name`` of their registered profile when the store holds it. `workers` processes open the updates
    (``workers.UpdateOpener``; default one a core, 1: all in this process); the result and the state are the same.

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
    auditor = _RoundAuditor(view, store, key, eval_set, model_name, state)
    verified = state.verified()
    result = AuditResult(view.chain_id, addresses, block)
    summaries = dict(verified)
    # The plan first (every round in order: re-checked, or audited with its commitments), so that the workers can
    # open the updates of the rounds to audit ahead of the audit, which records them one round after the other.
    plan: list[tuple[RoundRecord, tuple[list[CheckResult], list[Commitment]] | None, _History]] = []
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
                plan.append((record, auditor.commitments(record), history))
    audited = [(record, found[1]) for record, found, _ in plan if found is not None]
    try:
        with UpdateOpener(view, store, key, audited, default_workers() if workers is None else workers) as opener:
            for record, found, history in plan:
                a = record.agreement_id
                if found is None:
                    checks = auditor.recheck_artifacts(record)
                    result.checks += checks
                    result.rounds_rechecked.append((a, record.round))
                    if not all(c.ok for c in checks):
                        state.forget_round(a, record.round)  # the next audit examines it in full again
                    continue
                checks, summary = auditor.audit_round(record, history.dp, history.committed, found, opener)
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
                auditor.evaluation.accuracy(deserialize_tensors(fetch_by_digest(auditor.store, digest)))
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
    """Audits one ended round at a time (the module docstring lists the order)."""

    def __init__(
        self, view: ChainView, store: Store, key: bytes, eval_set: TabularData, model_name: str, state: AuditState
    ) -> None:
        self.view, self.store, self.key, self.eval_set, self.model_name, self.state = (
            view,
            store,
            key,
            eval_set,
            model_name,
            state,
        )
        self.evaluation = RememberingEvaluation(eval_set, model_name)  # the coordinator's, on the rebuilt set

    @cached_property
    def eval_commitment(self) -> str:
        return "0x" + eval_commitment(self.eval_set).hex()

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
        self,
        record: RoundRecord,
        dp: dict[str, dict[int, dict[str, Any]]],
        committed: dict[str, list[int]],
        found: tuple[list[CheckResult], list[Commitment]],
        opener: UpdateOpener,
    ) -> tuple[list[CheckResult], RoundSummary]:
        """Every check of one ended round; `found` is :meth:`commitments`' answer, `opener` opens its updates."""
        a, r = record.agreement_id, record.round
        terms = self.view.terms(a, record.version)
        checks, commitments = list(found[0]), found[1]
        m = RoundMaterial(record, commitments)
        not_checked: list[str] = []
        finalized = record.status is RoundStatus.FINALIZED and record.finalized is not None
        if finalized:
            assert record.finalized is not None
            m.base = self._fetch_tensors(checks, record.model_digest, "global model", record, record.opened)
            self._fetch_report(checks, m)
            fetched = resolve(
                self.store,
                bytes.fromhex(record.finalized.args["aggregateDigest"][2:]),
                what="aggregate model",
                agreement_id=a,
                round_id=r,
                event=record.finalized,
            )
            checks.append(fetched.check)
            m.aggregate_bytes, m.aggregate_cid = fetched.data, fetched.cid
        epsilons: dict[str, float] = {}
        bound = terms.max_sample_count
        for c, update in zip(commitments, opener.take(record, commitments)):
            p = c.partner
            within = 0 < c.sample_count <= bound  # its weight in FedAvg and in a by-sample-count payout
            checks.append(
                CheckResult(
                    SAMPLE_COUNT_BOUND,
                    within,
                    f"sample count {c.sample_count} {'within' if within else 'outside'} the signed bound [1, {bound}]",
                    a,
                    r,
                    p,
                    None,
                    {**c.evidence(), "bound": bound, "found": c.sample_count},
                )
            )
            checks.append(update.fetch_check)
            if not update.resolved:
                m.unchecked[p] = "its envelope does not resolve"
                not_checked.append(f"envelope_decrypts, manifest_signature, epsilon_recomputed of {p}")
                continue
            checks += update.results
            m.open_codes[p] = update.code
            opened = update.opened
            if opened is None:
                not_checked.append(f"epsilon_recomputed of {p} (its manifest cannot be trusted)")
                continue
            m.opened[p] = opened
            entry = dp_entry(opened.manifest)
            dp.setdefault(p, {})[r] = entry
            self.state.record_dp(a, p, r, entry)
            earlier = [x for x in committed.get(p, []) if x < r]
            missing = [x for x in earlier if x not in dp.get(p, {})]
            if missing:
                not_checked.append(f"epsilon_recomputed of {p} (DP parameters of round(s) {missing} unknown)")
                continue
            results, epsilons[p] = check_epsilon(c, update.cid, opened.manifest, [dp[p][x] for x in earlier], terms)
            checks += results
        if finalized and m.rules is not None:
            checks.append(check_rules_as_signed(m, self.store, terms))
        if finalized and m.report is not None and m.base is not None:
            checks += recheck_rejections(m)
            aggregate_check, _ = recompute_aggregate(m)
            if aggregate_check is None:
                not_checked.append("aggregate_recomputed and scores_and_payouts (an accepted update was not examined)")
            else:
                checks.append(aggregate_check)
                allocation = next((e.args for e in self.view.events("Allocated", agreement_id=a, round=r)), None)
                checks += check_scores_and_payouts(
                    m,
                    terms,
                    (self.eval_commitment == "0x" + record.eval_commitment.hex(), self.eval_commitment),
                    self.evaluation,
                    allocation,
                )
        elif finalized:
            not_checked.append(
                "rejections_recheck, aggregate_recomputed, scores_and_payouts (report or base model unavailable)"
            )
        if not_checked:
            for check in checks:
                if not check.ok:
                    check.evidence["not_checked"] = list(not_checked)
        return checks, self._summary(record, m, terms, epsilons)

    def _fetch_tensors(
        self, checks: list[CheckResult], digest: bytes, what: str, record: RoundRecord, event: IndexedEvent
    ) -> dict[str, torch.Tensor] | None:
        fetched = resolve(
            self.store, digest, what=what, agreement_id=record.agreement_id, round_id=record.round, event=event
        )
        checks.append(fetched.check)
        if fetched.data is None:
            return None
        try:
            return deserialize_tensors(fetched.data)
        except LeptonError as exc:
            fetched.check.ok, fetched.check.message = False, f"{what} {fetched.cid} is not safetensors: {exc}"
            return None

    def _fetch_report(self, checks: list[CheckResult], m: RoundMaterial) -> None:
        record = m.record
        assert record.finalized is not None
        fetched = resolve(
            self.store,
            bytes.fromhex(record.finalized.args["reportDigest"][2:]),
            what="round report",
            agreement_id=record.agreement_id,
            round_id=record.round,
            event=record.finalized,
            max_bytes=MAX_REPORT_BYTES,
        )
        checks.append(fetched.check)
        m.report_cid = fetched.cid
        if fetched.data is None:
            return
        try:
            report = load_report(fetched.data)
            header = (
                report["version"],
                report["chain_id"],
                report["ledger"],
                report["agreement_id"],
                report["round"],
                report["base_model_digest"],
                report["eval_commitment"],
            )
        except (LeptonError, KeyError) as exc:
            fetched.check.ok, fetched.check.message = False, f"round report {fetched.cid} does not parse: {exc!r}"
            return
        expected = (
            REPORT_VERSION,
            self.view.chain_id,
            self.view.ledger_address,
            record.agreement_id,
            record.round,
            "0x" + record.model_digest.hex(),
            "0x" + record.eval_commitment.hex(),
        )
        if header != expected:
            fetched.check.ok = False
            fetched.check.message = f"round report {fetched.cid} is not this round's report (version {REPORT_VERSION})"
            fetched.check.evidence.update(expected=list(expected), found=list(header))
            return
        try:
            m.rules = RoundRules.from_report(report)
        except LeptonError as exc:  # rules the coordinator could not have run: nothing of the round re-derives
            fetched.check.ok, fetched.check.message = (
                False,
                f"round report {fetched.cid} names rules that cannot run: {exc}",
            )
            return
        m.report = report

    def _summary(self, record: RoundRecord, m: RoundMaterial, terms: Terms, epsilons: dict[str, float]) -> RoundSummary:
        accuracy = None
        if m.aggregate_bytes is not None:  # the finalized aggregate, verified against its on-chain digest
            try:
                accuracy = float(self.evaluation.accuracy(deserialize_tensors(m.aggregate_bytes)))
            except (LeptonError, RuntimeError):  # not a model of this shape: no accuracy to show
                accuracy = None
        lines = m.report_lines()
        cap = terms.epsilon_cap
        partners = {
            c.partner: PartnerLine(
                cumulative_epsilon=epsilons.get(c.partner, fixed_to_epsilon(c.cumulative_epsilon)),
                epsilon_cap=cap,
                payout=int(lines.get(c.partner, {}).get("payout", 0)),
                accepted=bool(lines.get(c.partner, {}).get("accepted", False)),
            )
            for c in m.commitments
        }
        block = last_change(self.view, record)
        return RoundSummary(
            record.agreement_id,
            record.round,
            accuracy,
            self.view.gas_used(record.agreement_id, record.round),
            block,
            partners,
        )
