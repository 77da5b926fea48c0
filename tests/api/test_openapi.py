"""The service's API description: every operation named, answered with a model, its errors documented."""

from __future__ import annotations


def test_every_operation_has_a_stable_id_a_response_model_and_documented_errors(service):
    spec = service.api.get("/openapi.json").json()
    operations = [(path, method, op) for path, item in spec["paths"].items() for method, op in item.items()]
    ids = [op["operationId"] for _, _, op in operations]
    assert len(ids) == len(set(ids)) and all(i.replace("_", "").isalpha() for i in ids)
    for path, method, op in operations:
        success = [code for code in op["responses"] if code.startswith("2")]
        assert len(success) == 1, (path, method)
        if method != "head":  # a HEAD answer has headers only
            assert op["responses"][success[0]].get("content"), (path, method)  # a model or a declared media type
        if path != "/metrics":
            for code in ("422", "503"):
                schema = op["responses"][code]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (path, method, code)
    assert {
        "auth_nonce",
        "auth_login",
        "partner_get",
        "agreement_get",
        "round_get",
        "reward_get",
        "blob_get",
        "blob_head",
        "transaction_prepare",
        "transaction_relay",
        "envelope_upload",
        "round_close",
        "job_get",
        "health",
        "metrics",
        "agreement_propose",
        "agreement_fund",
        "round_open",
        "audit_run",
        "audit_report",
    } <= set(ids)
