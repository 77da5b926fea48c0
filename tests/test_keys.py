"""The encrypted keystore (lepton_ledger/keys.py) and its CLI (lepton_ledger/commands/keys.py).

Every keystore here uses a low scrypt cost through ``Keystore(scrypt_n=...)``; the defaults stay at
eth-keyfile's cost.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from typer.testing import CliRunner

from lepton_ledger import keys
from lepton_ledger.cli import app
from lepton_ledger.commands import keys as keys_cli
from lepton_ledger.envelope.crypto import generate_x25519_keypair, x25519_public_key
from lepton_ledger.errors import LeptonError
from lepton_ledger.keys import (
    IdentityExists,
    InvalidIdentityName,
    InvalidPrivateKey,
    Keystore,
    KeystoreCorrupted,
    PasswordRequired,
    UnknownIdentity,
    WrongPassword,
)

LOW_N = 2**4
PASSWORD = "correct horse battery staple"
# A well-known test key (eth-account's docs); never used on a real chain.
KNOWN_KEY = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
KNOWN_ADDRESS = Account.from_key(KNOWN_KEY).address


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(keys.PASSWORD_ENV, raising=False)
    monkeypatch.setenv("LEPTON_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv(keys.KEYSTORE_DIR_ENV, str(tmp_path / "keystore"))


@pytest.fixture
def store(tmp_path: Path) -> Keystore:
    return Keystore(tmp_path / "keystore", scrypt_n=LOW_N)


def _secrets(unlocked: keys.UnlockedIdentity) -> list[str]:
    """Every spelling of the identity's private material that must never show up in an output."""
    eth = bytes(unlocked.account.key).hex()
    x = unlocked.x25519_private_bytes().hex()
    return [eth, eth.upper(), "0x" + eth, x, x.upper()]


def _assert_clean(text: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in text


# ---------------------------------------------------------------------------------------------------------
# round trips
# ---------------------------------------------------------------------------------------------------------


def test_create_then_unlock_gives_working_keys(store: Keystore) -> None:
    identity = store.create("partner-alpha", PASSWORD)
    unlocked = store.unlock("partner-alpha", PASSWORD)

    assert unlocked.address == identity.address == unlocked.account.address
    assert x25519_public_key(unlocked.x25519_private_bytes()) == identity.x25519_public
    signed = unlocked.account.sign_message(encode_defunct(text="hello"))
    assert Account.recover_message(encode_defunct(text="hello"), signature=signed.signature) == identity.address


def test_two_identities_have_different_keys(store: Keystore) -> None:
    a = store.create("a", PASSWORD)
    b = store.create("b", PASSWORD)
    assert a.address != b.address
    assert a.x25519_public != b.x25519_public


@pytest.mark.parametrize("spelling", [KNOWN_KEY, "0x" + KNOWN_KEY, KNOWN_KEY.upper(), bytes.fromhex(KNOWN_KEY)])
def test_import_round_trip(store: Keystore, spelling: str | bytes) -> None:
    identity = store.import_key("coordinator", spelling, PASSWORD)
    unlocked = store.unlock("coordinator", PASSWORD)
    assert identity.address == KNOWN_ADDRESS == unlocked.address
    assert bytes(unlocked.account.key).hex() == KNOWN_KEY


def test_import_keeps_a_given_x25519_key(store: Keystore) -> None:
    x_private, x_public = generate_x25519_keypair()
    identity = store.import_key("auditor", KNOWN_KEY, PASSWORD, x25519_private_key=x_private)
    assert identity.x25519_public == x_public
    assert store.unlock("auditor", PASSWORD).x25519_private_bytes() == x_private


@pytest.mark.parametrize("bad", ["", "zz" * 32, KNOWN_KEY[:-2], "00" * 32, "ff" * 32, b"\x01" * 31, 12345])
def test_import_refuses_a_malformed_key_without_quoting_it(store: Keystore, bad: object) -> None:
    with pytest.raises(InvalidPrivateKey) as caught:
        store.import_key("x", bad, PASSWORD)  # type: ignore[arg-type]
    if isinstance(bad, str) and bad:
        assert bad not in str(caught.value)
    assert not (store.directory / "x.json").exists()


def test_change_password(store: Keystore) -> None:
    identity = store.create("c", PASSWORD)
    store.change_password("c", PASSWORD, "new password")
    with pytest.raises(WrongPassword):
        store.unlock("c", PASSWORD)
    assert store.unlock("c", "new password").address == identity.address


def test_list_show_delete(store: Keystore) -> None:
    assert store.list() == []
    b = store.create("b", PASSWORD)
    a = store.create("a", PASSWORD)
    assert [i.name for i in store.list()] == ["a", "b"]
    assert store.list() == [a, b]
    assert store.show("b") == b
    store.delete("a")
    assert store.list() == [b]
    with pytest.raises(UnknownIdentity):
        store.show("a")


# ---------------------------------------------------------------------------------------------------------
# passwords
# ---------------------------------------------------------------------------------------------------------


def test_wrong_password_names_the_identity_not_the_password(store: Keystore) -> None:
    store.create("partner-alpha", PASSWORD)
    with pytest.raises(WrongPassword) as caught:
        store.unlock("partner-alpha", "hunter2-guess")
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, LeptonError)
    assert "partner-alpha" in str(caught.value)
    assert "hunter2-guess" not in str(caught.value) and PASSWORD not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_password_from_the_environment(store: Keystore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(keys.PASSWORD_ENV, PASSWORD)
    identity = store.create("env", None)
    assert store.unlock("env").address == identity.address
    monkeypatch.setenv(keys.PASSWORD_ENV, "other")
    with pytest.raises(WrongPassword):
        store.unlock("env")
    assert store.unlock("env", PASSWORD).address == identity.address  # an argument wins over the env var


def test_no_password_anywhere_is_refused(store: Keystore) -> None:
    with pytest.raises(PasswordRequired):
        store.create("nopw")
    assert not (store.directory / "nopw.json").exists()


# ---------------------------------------------------------------------------------------------------------
# names
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["unlock", "show", "delete", "change_password"])
def test_unknown_identity(store: Keystore, op: str) -> None:
    args = {
        "unlock": ("ghost", PASSWORD),
        "show": ("ghost",),
        "delete": ("ghost",),
        "change_password": ("ghost", PASSWORD, "x"),
    }[op]
    with pytest.raises(UnknownIdentity, match="ghost"):
        getattr(store, op)(*args)


def test_create_and_import_refuse_an_existing_name_and_leave_it_alone(store: Keystore) -> None:
    store.create("coordinator", PASSWORD)
    before = (store.directory / "coordinator.json").read_bytes()
    with pytest.raises(IdentityExists, match="coordinator"):
        store.create("coordinator", PASSWORD)
    with pytest.raises(IdentityExists):
        store.import_key("coordinator", KNOWN_KEY, "another")
    assert (store.directory / "coordinator.json").read_bytes() == before


def test_the_atomic_no_clobber_check_holds_when_the_file_appears_late(store: Keystore) -> None:
    # Another process creating the same name between our existence check and our write must win cleanly.
    store.create("race", PASSWORD)
    before = (store.directory / "race.json").read_bytes()
    with pytest.raises(IdentityExists):
        store._write(store.directory / "race.json", {"other": 1}, overwrite=False, name="race")
    assert (store.directory / "race.json").read_bytes() == before
    assert sorted(p.name for p in store.directory.iterdir()) == ["race.json"]


@pytest.mark.parametrize("name", ["", "../escape", "a/b", ".hidden", "-flag", "x" * 65, "sp ace", "é"])
def test_invalid_names_are_refused(store: Keystore, name: str) -> None:
    with pytest.raises(InvalidIdentityName):
        store.create(name, PASSWORD)
    assert not store.directory.exists() or list(store.directory.iterdir()) == []


# ---------------------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------------------


def test_keyfile_is_0600_and_the_folder_0700(store: Keystore) -> None:
    store.create("perm", PASSWORD)
    assert stat.S_IMODE(os.stat(store.directory / "perm.json").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(store.directory).st_mode) == 0o700
    store.change_password("perm", PASSWORD, "new")
    assert stat.S_IMODE(os.stat(store.directory / "perm.json").st_mode) == 0o600


def test_keyfile_is_a_standard_v3_keyfile_eth_account_reads_directly(store: Keystore) -> None:
    store.import_key("interop", KNOWN_KEY, PASSWORD)
    document = json.loads((store.directory / "interop.json").read_text())
    assert document["version"] == 3
    assert document["crypto"]["kdf"] == "scrypt"
    assert document["crypto"]["kdfparams"]["n"] == LOW_N
    assert "0x" + document["address"].lower() == KNOWN_ADDRESS.lower()
    assert bytes(Account.decrypt(document, PASSWORD)).hex() == KNOWN_KEY
    assert document["lepton"]["x25519"]["cipher"] == "aes-256-gcm"


def test_defaults_keep_eth_keyfiles_full_scrypt_cost() -> None:
    assert Keystore().scrypt_n == keys.DEFAULT_SCRYPT_N == 2**18


def test_keystore_folder_comes_from_the_env_or_the_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert Keystore().directory == tmp_path / "keystore"
    monkeypatch.delenv(keys.KEYSTORE_DIR_ENV)
    assert Keystore().directory == tmp_path / "data" / "keystore"


def _damage_json(text: str) -> str:
    return text[: len(text) // 2]


def _edit(mutate):  # type: ignore[no-untyped-def]
    def apply(text: str) -> str:
        document = json.loads(text)
        mutate(document)
        return json.dumps(document)

    return apply


def _flip_hex(value: str) -> str:
    return ("1" if value[0] == "0" else "0") + value[1:]


CORRUPTIONS = {
    "truncated": _damage_json,
    "not-json": lambda text: "\x00\x01garbage",
    "array": lambda text: "[1, 2]",
    "no-lepton-section": _edit(lambda d: d.pop("lepton")),
    "no-crypto": _edit(lambda d: d.pop("crypto")),
    "bad-version": _edit(lambda d: d.__setitem__("version", 7)),
    "short-x25519-public": _edit(lambda d: d["lepton"]["x25519"].__setitem__("public", "abcd")),
    "bad-address": _edit(lambda d: d.__setitem__("address", "not-an-address")),
}


@pytest.mark.parametrize("how", sorted(CORRUPTIONS))
def test_corrupted_file_is_named(store: Keystore, how: str) -> None:
    store.create("broken", PASSWORD)
    path = store.directory / "broken.json"
    path.write_text(CORRUPTIONS[how](path.read_text()))
    for call in (lambda: store.unlock("broken", PASSWORD), lambda: store.show("broken"), store.list):
        with pytest.raises(KeystoreCorrupted) as caught:
            call()
        assert str(path) in str(caught.value)
        assert caught.value.path == path


# With the right password, these damages are caught after the Ethereum half decrypts.
DEEP_CORRUPTIONS = {
    "x25519-ciphertext": _edit(
        lambda d: d["lepton"]["x25519"].__setitem__("ciphertext", _flip_hex(d["lepton"]["x25519"]["ciphertext"]))
    ),
    "x25519-public": _edit(
        lambda d: d["lepton"]["x25519"].__setitem__("public", _flip_hex(d["lepton"]["x25519"]["public"]))
    ),
    "x25519-nonce-not-hex": _edit(lambda d: d["lepton"]["x25519"].__setitem__("nonce", "zz")),
    "x25519-kdf": _edit(lambda d: d["lepton"]["x25519"].__setitem__("kdf", "pbkdf2")),
    "address-swapped": _edit(lambda d: d.__setitem__("address", KNOWN_ADDRESS[2:])),
}


@pytest.mark.parametrize("how", sorted(DEEP_CORRUPTIONS))
def test_damage_behind_a_right_password_is_corruption_not_a_wrong_password(store: Keystore, how: str) -> None:
    store.create("deep", PASSWORD)
    path = store.directory / "deep.json"
    path.write_text(DEEP_CORRUPTIONS[how](path.read_text()))
    with pytest.raises(KeystoreCorrupted, match="deep.json"):
        store.unlock("deep", PASSWORD)


def test_an_x25519_section_moved_from_another_identity_fails(store: Keystore) -> None:
    store.create("one", PASSWORD)
    store.create("two", PASSWORD)
    one = json.loads((store.directory / "one.json").read_text())
    two = json.loads((store.directory / "two.json").read_text())
    two["lepton"]["x25519"] = one["lepton"]["x25519"]
    (store.directory / "two.json").write_text(json.dumps(two))
    with pytest.raises(KeystoreCorrupted, match="authentication tag"):
        store.unlock("two", PASSWORD)


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_a_failure_mid_write_leaves_the_old_file(
    store: Keystore, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    identity = store.create("atomic", PASSWORD)
    path = store.directory / "atomic.json"
    before = path.read_bytes()

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(keys.os, failing, boom)
    with pytest.raises(OSError, match="disk on fire"):
        store.change_password("atomic", PASSWORD, "new password")
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert store.unlock("atomic", PASSWORD).address == identity.address
    assert sorted(p.name for p in store.directory.iterdir()) == ["atomic.json"]  # no temp file left


def test_a_failed_create_leaves_nothing(store: Keystore, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(keys.os, "fsync", boom)
    with pytest.raises(OSError):
        store.create("never", PASSWORD)
    monkeypatch.undo()
    assert list(store.directory.iterdir()) == []
    with pytest.raises(UnknownIdentity):
        store.show("never")


# ---------------------------------------------------------------------------------------------------------
# no key material in any output
# ---------------------------------------------------------------------------------------------------------


def test_no_key_material_in_reprs_errors_or_logs(store: Keystore, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    outputs: list[str] = []
    identity = store.import_key("secretive", KNOWN_KEY, PASSWORD)
    unlocked = store.unlock("secretive", PASSWORD)
    outputs += [repr(identity), str(identity), repr(unlocked), str(unlocked), repr(store), str(store)]
    outputs += [repr(unlocked.identity), repr(store.list()), repr(store.show("secretive"))]
    outputs += [repr(unlocked.account), repr(unlocked.x25519_private), repr(vars(unlocked))]

    errors: list[BaseException] = []
    for attempt in (
        lambda: store.unlock("secretive", "wrong"),
        lambda: store.create("secretive", PASSWORD),
        lambda: store.import_key("secretive", KNOWN_KEY, PASSWORD),
        lambda: store.import_key("other", KNOWN_KEY[:-1] + "g", PASSWORD),
        lambda: store.import_key("other", KNOWN_KEY[:-2], PASSWORD),
        lambda: store.unlock("ghost", PASSWORD),
        lambda: store.create("../x", PASSWORD),
    ):
        with pytest.raises(LeptonError) as caught:
            attempt()
        errors.append(caught.value)
    path = store.directory / "secretive.json"
    path.write_text(_flip_hex(path.read_text()))  # "{" -> "0": not JSON any more
    with pytest.raises(KeystoreCorrupted) as corrupted:
        store.unlock("secretive", PASSWORD)
    errors.append(corrupted.value)
    for error in errors:
        outputs += [str(error), repr(error), repr(error.args)]
        assert error.__cause__ is None

    secrets = _secrets(unlocked) + [KNOWN_KEY, PASSWORD]
    assert KNOWN_KEY in secrets[0]  # the check below looks for the right thing
    for text in outputs + [caplog.text]:
        _assert_clean(text, secrets)


# ---------------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def cli(store: Keystore, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setattr(keys_cli, "_keystore", lambda: store)
    return CliRunner()


def test_cli_create_show_list_delete(cli: CliRunner, store: Keystore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(keys.PASSWORD_ENV, PASSWORD)
    created = cli.invoke(app, ["keys", "create", "coordinator"])
    assert created.exit_code == 0, created.output
    identity = store.show("coordinator")
    assert identity.address in created.output and identity.x25519_public_hex in created.output
    assert "`lepton-ledger node fund --key coordinator` gives it development ether" in created.output

    shown = cli.invoke(app, ["keys", "show", "coordinator"])
    assert shown.exit_code == 0 and identity.address in shown.output and identity.x25519_public_hex in shown.output

    listed = cli.invoke(app, ["keys", "list"])
    assert listed.exit_code == 0
    assert f"coordinator\t{identity.address}\t{identity.x25519_public_hex}" in listed.output

    again = cli.invoke(app, ["keys", "create", "coordinator"])
    assert again.exit_code == 1 and "already exists" in again.output

    unlocked = store.unlock("coordinator", PASSWORD)
    for result in (created, shown, listed, again):
        _assert_clean(result.output, _secrets(unlocked) + [PASSWORD])

    kept = cli.invoke(app, ["keys", "delete", "coordinator"], input="n\n")
    assert kept.exit_code == 1 and store.show("coordinator") == identity
    deleted = cli.invoke(app, ["keys", "delete", "coordinator", "--yes"])
    assert deleted.exit_code == 0
    assert store.list() == []
    gone = cli.invoke(app, ["keys", "show", "coordinator"])
    assert gone.exit_code == 1 and "no identity named 'coordinator'" in gone.output


def test_cli_create_prompts_for_the_password_twice(cli: CliRunner, store: Keystore) -> None:
    result = cli.invoke(app, ["keys", "create", "prompted"], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output  # hidden input is not echoed
    store.unlock("prompted", PASSWORD)


def test_cli_import_reads_the_key_from_stdin_never_echoing_it(
    cli: CliRunner, store: Keystore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(keys.PASSWORD_ENV, PASSWORD)
    result = cli.invoke(app, ["keys", "import", "partner-alpha"], input=KNOWN_KEY + "\n")
    assert result.exit_code == 0, result.output
    assert KNOWN_ADDRESS in result.output
    unlocked = store.unlock("partner-alpha", PASSWORD)
    assert unlocked.address == KNOWN_ADDRESS
    _assert_clean(result.output, _secrets(unlocked) + [KNOWN_KEY, PASSWORD])


def test_cli_import_refuses_a_bad_key_without_echoing_it(cli: CliRunner, store: Keystore) -> None:
    bad = KNOWN_KEY[:-1] + "g"
    result = cli.invoke(app, ["keys", "import", "x"], input=bad + "\n")
    assert result.exit_code == 1
    assert "64 hex digits" in result.output and bad not in result.output
    assert store.list() == []


def test_cli_import_takes_no_key_argument(cli: CliRunner) -> None:
    result = cli.invoke(app, ["keys", "import", "x", KNOWN_KEY])
    assert result.exit_code != 0
    assert not (keys_cli._keystore().directory / "x.json").exists()


def test_cli_wrong_name_and_corruption_are_one_line_errors(cli: CliRunner, store: Keystore) -> None:
    store.create("broken", PASSWORD)
    (store.directory / "broken.json").write_text("{")
    result = cli.invoke(app, ["keys", "list"])
    assert result.exit_code == 1
    assert "broken.json" in result.output and "corrupted" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", ["create", "import", "list", "show", "delete"])
def test_cli_help_says_what_each_command_writes(cli: CliRunner, command: str) -> None:
    result = cli.invoke(app, ["keys", command, "--help"])
    assert result.exit_code == 0
    assert "writes" in result.output or "removes" in result.output


def test_the_default_keystore_uses_the_configured_folder(store: Keystore) -> None:
    # store's folder is $LEPTON_KEYSTORE_DIR (see _isolated_env); a Keystore() finds what it wrote.
    identity = store.create("shared", PASSWORD)
    assert Keystore().list() == [identity]
    assert Keystore().show("shared") == identity
    Keystore().delete("shared")
    with pytest.raises(UnknownIdentity):
        Keystore().unlock("shared", PASSWORD)


def test_cli_list_names_a_damaged_keyfile_and_still_lists_the_others(cli: CliRunner, store: Keystore) -> None:
    good = store.create("alpha", PASSWORD)
    store.create("beta", PASSWORD)
    damaged = store.path_of("beta")
    damaged.write_text("{not json")
    listed = cli.invoke(app, ["keys", "list"])
    assert listed.exit_code == 1
    assert f"alpha\t{good.address}\t{good.x25519_public_hex}" in listed.stdout
    assert listed.stderr.strip() == f"error: keystore file {str(damaged)!r} is corrupted: not valid JSON"
    assert damaged.read_text() == "{not json"  # left for its owner to restore
