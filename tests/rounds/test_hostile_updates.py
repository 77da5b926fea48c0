"""A round survives any partner (issue 11, item 2): whatever bytes a partner commits, ``close_round`` rejects that
update with a recorded reason code and finalizes the others, and the audit of the round reports checks, never a
traceback. The hostile envelopes are the ones that used to stop the round: a deeply nested manifest
(RecursionError before the signature check), a safetensors header with Infinity (OverflowError) or nested
(RecursionError)."""

from __future__ import annotations

import dataclasses
import hashlib
import struct

import pytest
from agreement_setup import (
    NAMES,
    make_coordinator,
    make_partner,
    new_agreement,
    open_round,
    recipients,
)

from lepton_ledger.audit import audit_deployment
from lepton_ledger.envelope.envelope import (
    SealedEnvelope,
    encode_payload,
    encrypt_envelope,
)
from lepton_ledger.envelope.tensors import tensor_digest
from lepton_ledger.rounds.partner import Partner


def _resealed(partner: Partner, sealed: SealedEnvelope, recipients: list[bytes], tensor_bytes: bytes) -> SealedEnvelope:
    """A validly signed envelope whose manifest commits to `tensor_bytes`."""
    manifest = dataclasses.replace(sealed.manifest, tensor_digest=tensor_digest(tensor_bytes))
    signature = manifest.sign(bytes(partner.account.key))
    data = encrypt_envelope(encode_payload(manifest.to_document(), signature, tensor_bytes), recipients)
    return SealedEnvelope(data, manifest, signature, manifest.digest(), hashlib.sha256(data).digest())


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


@pytest.mark.parametrize(("mutate", "code"), [(nested_manifest, "MalformedManifest"),
                                              (infinity_in_tensor_header, "MalformedPayload"),
                                              (nested_tensor_header, "MalformedPayload")])  # fmt: skip
def test_close_round_rejects_a_hostile_update_finalizes_the_rest_and_the_audit_reports_it(world, executor, mutate,
                                                                                         code, tmp_path):  # fmt: skip
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
    assert world["d"].ledger.functions.round(agreement_id, round_id).call()[0] == 2  # finalized

    result = audit_deployment(world["w3"], world["d"].addresses(), world["store"], world["keys"]["auditor"],
                              eval_set_spec={"dataset": "digits", "num_partners": 3, "seed": 0},
                              state_path=tmp_path / "audit.sqlite")  # fmt: skip
    mine = [c for c in result.checks if c.agreement_id == agreement_id]
    failed = [c for c in mine if not c.ok]
    assert failed and {c.partner for c in failed} == {hostile.address}, [c.to_dict() for c in failed]
    assert {c.name for c in failed} == {"manifest_signature"}
    assert all(c.ok for c in mine if c.name in ("rejections_recheck", "aggregate_recomputed", "scores_and_payouts"))
