"""`Settings`: one model over the LEPTON_* variables, beside the settings functions the package uses."""

from __future__ import annotations

import pytest

from lepton_ledger import settings
from lepton_ledger.errors import ConfigurationError


def test_settings_read_the_environment_and_overrides_win(tmp_path, monkeypatch):
    monkeypatch.setenv("LEPTON_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LEPTON_RPC_URL", "http://127.0.0.1:9999")
    monkeypatch.setenv("LEPTON_API_DOMAIN", "ledger.example")
    monkeypatch.setenv("LEPTON_API_TOKEN_TTL", "60")
    monkeypatch.delenv("LEPTON_API_COORDINATOR_KEY", raising=False)
    read = settings.Settings.from_env(token_ttl=120)
    assert read.data_dir == settings.data_dir() == tmp_path and read.rpc_url == settings.rpc_url()
    assert read.deployment == tmp_path / "deployment.json" and read.domain == "ledger.example"
    assert read.token_ttl == 120 and read.nonce_ttl == 300 and read.coordinator_key is None


@pytest.mark.parametrize(
    ("variable", "value"), [("LEPTON_API_NONCE_TTL", "-5"), ("LEPTON_API_MAX_ENVELOPE_BYTES", "lots")]
)
def test_a_malformed_variable_is_one_named_error(tmp_path, monkeypatch, variable, value):
    monkeypatch.setenv("LEPTON_DATA_DIR", str(tmp_path))
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=variable.removeprefix("LEPTON_API_").lower()):
        settings.Settings.from_env()
