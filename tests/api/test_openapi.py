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
        "auth_me",
        "health_live",
        "dashboard",
        "agreement_signature_prepare",
        "agreement_signature_relay",
        "commitment_prepare",
        "commitment_submit",
        "partner_approve",
        "agreement_bond",
        "auth_logout",
        "challenge_evidence_upload",
    } <= set(ids)


def test_a_method_a_route_does_not_serve_is_405_naming_the_methods_it_does(service):
    """Found by schemathesis: RFC 9110 requires `Allow` on a 405, and the one error shape dropped it."""
    reply = service.api.request("TRACE", "/v1/health")
    assert reply.status_code == 405 and reply.json()["error"]["code"] == "HTTPError", reply.text
    assert reply.headers["allow"] == "GET"


def test_the_schema_says_what_shape_an_address_and_a_raw_transaction_take(service):
    """Found by schemathesis: "0" was a schema-valid address that the service refused (422); the schema now says
    the shape it checks (an EIP-55 checksum it cannot say: a mixed-case address must carry one)."""
    spec = service.api.get("/openapi.json").json()
    address = "^0x[0-9a-fA-F]{40}$"
    partner = spec["paths"]["/v1/partners/{address}"]["get"]["parameters"]
    assert [p["schema"].get("pattern") for p in partner if p["name"] == "address"] == [address]
    schemas = spec["components"]["schemas"]
    assert schemas["NonceRequest"]["properties"]["address"]["pattern"] == address
    assert schemas["RelayRequest"]["properties"]["raw"]["pattern"] == "^0x([0-9a-fA-F]{2})+$"
    refused = service.api.post("/v1/auth/nonce", json={"address": "0"})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "Malformed", refused.text
