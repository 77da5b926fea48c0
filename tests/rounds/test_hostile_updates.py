"""A round survives any partner (issue 11, item 2): whatever bytes a partner commits, ``close_round`` rejects that
update with a recorded reason code and finalizes the others, and the audit of the round reports checks, never a
traceback. The hostile envelopes are the ones that used to stop the round: a deeply nested manifest
(RecursionError before the signature check), a safetensors header with Infinity (OverflowError) or nested
(RecursionError). Then property tests: arbitrary bytes, mutated envelopes and mutated payloads sealed to the
recipients, through ``Coordinator.open_update`` and the auditor's ``open_commitment``: a named error or a named
failed check, never anything else."""

from __future__ import annotations

import dataclasses
import struct

import pytest
from agreement_setup import (
    NAMES,
    audit,
    make_coordinator,
    make_partner,
    new_agreement,
    open_round,
    recipients,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from lepton_ledger.audit.chain_view import ChainView, Commitment
from lepton_ledger.audit.workers import open_updates
from lepton_ledger.chain.state import Round
from lepton_ledger.envelope.envelope import (
    SealedEnvelope,
    decrypt_envelope,
    encode_payload,
    encrypt_envelope,
)
from lepton_ledger.envelope.tensors import tensor_digest
from lepton_ledger.errors import LeptonError
from lepton_ledger.protocol.addressing import publish
from lepton_ledger.rounds.coordinator import CommitmentView
from lepton_ledger.rounds.partner import Partner, recipient_keys
from lepton_ledger.units import RoundStatus


def _resealed(partner: Partner, sealed: SealedEnvelope, recipients: list[bytes], tensor_bytes: bytes) -> SealedEnvelope:
    """A validly signed envelope whose manifest commits to `tensor_bytes`."""
    manifest = dataclasses.replace(sealed.manifest, tensor_digest=tensor_digest(tensor_bytes))
    signature = manifest.sign(bytes(partner.account.key))
    data = encrypt_envelope(encode_payload(manifest.to_document(), signature, tensor_bytes), recipients)
    return SealedEnvelope(data, manifest, signature, manifest.digest())


def _safetensors(header: bytes) -> bytes:
    return struct.pack("<Q", len(header)) + header + bytes(4)


def nested_manifest(partner, sealed, recipients):
    document = b"[" * 20_000 + b"]" * 20_000  # under the manifest byte bound: the depth bound refuses it
    return dataclasses.replace(sealed, data=encrypt_envelope(encode_payload(document, bytes(65), b""), recipients))


def infinity_in_tensor_header(partner, sealed, recipients):
    header = b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,Infinity]}}'
    return _resealed(partner, sealed, recipients, _safetensors(header))


def nested_tensor_header(partner, sealed, recipients):
    header = b'{"w":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    return _resealed(partner, sealed, recipients, _safetensors(header))


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (nested_manifest, "MalformedManifest"),
        (infinity_in_tensor_header, "MalformedPayload"),
        (nested_tensor_header, "MalformedPayload"),
    ],
)
def test_close_round_rejects_a_hostile_update_finalizes_the_rest_and_the_audit_reports_it(
    world, executor, mutate, code, tmp_path
):
    class Hostile(Partner):
        def seal_update(self, result, **kwargs):
            sealed = super().seal_update(result, **kwargs)
            return mutate(self, sealed, kwargs["recipients"])

    agreement_id = new_agreement(world)
    coordinator = make_coordinator(world, f"hostile-{mutate.__name__}")
    round_id, _ = open_round(world, coordinator, agreement_id)
    honest = [make_partner(world, n, agreement_id, executor) for n in NAMES[:2]]
    hostile = make_partner(world, NAMES[2], agreement_id, executor, cls=Hostile)
    for p in [*honest, hostile]:
        p.run_round(agreement_id, round_id, recipients(world))

    outcome = coordinator.close_round(agreement_id, round_id)
    assert sorted(outcome.report.accepted) == sorted(p.address for p in honest)
    (reason,) = outcome.report.rejected[hostile.address]
    assert reason["code"] == code
    assert Round.read(world["d"].ledger.functions.round(agreement_id, round_id)).status is RoundStatus.FINALIZED

    result = audit(world, tmp_path / "audit.sqlite")
    mine = [c for c in result.checks if c.agreement_id == agreement_id]
    failed = [c for c in mine if not c.ok]
    assert failed and {c.partner for c in failed} == {hostile.address}, [c.to_dict() for c in failed]
    assert {c.name for c in failed} == {"manifest_signature"}
    assert all(c.ok for c in mine if c.name in ("rejections_recheck", "aggregate_recomputed", "scores_and_payouts"))


# -- property tests: any bytes a partner commits, through the coordinator's and the auditor's own openers -------


@pytest.fixture(scope="module")
def committed(world, executor, tmp_path_factory):
    """An open round, an honest partner's prepared (not yet committed) envelope and its payload, the coordinator,
    and the auditor's view of the chain."""
    agreement_id = new_agreement(world)
    coordinator = make_coordinator(world, "property")
    round_id, _ = open_round(world, coordinator, agreement_id)
    prepared = make_partner(world, NAMES[0], agreement_id, executor).prepare_update(
        agreement_id, round_id, recipients(world)
    )
    payload = decrypt_envelope(prepared.envelope, world["keys"]["coordinator"])[1]
    view = ChainView(
        world["w3"],
        world["d"].addresses(),
        tmp_path_factory.mktemp("view") / "events.sqlite",
        world["w3"].eth.block_number,
    )
    record = next(r for r in view.rounds(agreement_id) if r.round == round_id)
    return prepared, bytes(payload), coordinator, view, record


def _mutations(data: bytes) -> st.SearchStrategy[bytes]:
    """`data` with up to 4 bytes changed, cut or inserted (JSON-ish inserts more often)."""
    edits = st.lists(
        st.tuples(
            st.integers(0, len(data)),
            st.sampled_from(["flip", "cut", "insert"]),
            st.sampled_from([b"[", b"{", b"}", b"Infinity", b"9" * 400, b"[" * 3000, b"\x00"]),
        ),
        min_size=1,
        max_size=4,
    )

    def apply(changes: list[tuple[int, str, bytes]]) -> bytes:
        out = bytearray(data)
        for at, kind, insert in changes:
            if kind == "flip" and at < len(out):
                out[at] ^= 0x5A
            elif kind == "cut":
                del out[at : at + 16]
            else:
                out[at:at] = insert
        return bytes(out)

    return edits.map(apply)


@settings(max_examples=30, deadline=None)
@given(choice=st.data())
def test_whatever_bytes_a_partner_commits_the_coordinator_and_the_auditor_name_the_fault(world, committed, choice):
    prepared, payload, coordinator, view, record = committed
    keys = recipient_keys(world["d"], recipients(world))
    data = choice.draw(
        st.one_of(
            st.binary(max_size=2000),
            _mutations(prepared.envelope),
            _mutations(payload).map(lambda p: encrypt_envelope(p, keys)),
        )
    )
    _, digest = publish(world["store"], data)
    args = {
        "envelopeDigest": "0x" + digest.hex(),
        "manifestDigest": "0x" + prepared.manifest_digest.hex(),
        "cumulativeEpsilon": prepared.cumulative_epsilon_fixed,
        "sampleCount": prepared.sample_count,
    }
    partner = world["accounts"][NAMES[0]].address
    try:
        coordinator.open_update(CommitmentView(partner, record.agreement_id, record.round, args), record.model_digest)
    except LeptonError:
        pass
    commitment = Commitment(
        record.agreement_id,
        record.round,
        partner,
        digest,
        prepared.manifest_digest,
        prepared.cumulative_epsilon_fixed,
        prepared.sample_count,
        "0x00",
        0,
    )
    (update,) = open_updates(view, world["store"], world["keys"]["auditor"], record, [commitment])
    results = update.results
    assert update.resolved and results and all(r.name in ("envelope_decrypts", "manifest_signature") for r in results)
