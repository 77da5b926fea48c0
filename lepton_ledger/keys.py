"""An encrypted keystore for each role's keys: one Ethereum key and one X25519 key per identity.

Where: ``$LEPTON_KEYSTORE_DIR`` when set, ``data_dir() / "keystore"`` otherwise (see settings.py). The folder
is created with mode 0700.

Password: passed as an argument, or taken from ``$LEPTON_KEYSTORE_PASSWORD`` when the argument is ``None``
(the CLI prompts, with hidden input, when neither is given). The password is never stored, printed or logged.

File format (``<name>.json``, mode 0600, one file per identity so that every write is a single atomic
``os.replace``): a standard eth-account **version 3 keyfile** -- exactly what ``Account.encrypt(key,
password, kdf="scrypt")`` returns, so ``Account.decrypt(json.load(f), password)`` and geth-style tools read
the Ethereum key directly -- plus one extra top-level member that those tools ignore::

    "lepton": {
      "version": 1,
      "name": "partner-alpha",
      "x25519": {
        "public": "<64 hex>",                        # raw 32-byte public key, readable without the password
        "kdf": "scrypt",
        "kdfparams": {"n": 262144, "r": 8, "p": 1, "dklen": 32, "salt": "<32 hex>"},
        "cipher": "aes-256-gcm",
        "nonce": "<24 hex>",
        "ciphertext": "<96 hex>"                     # 32-byte raw private key + 16-byte tag
      }
    }

The X25519 private key is encrypted with AES-256-GCM under ``scrypt(password, salt, n, r, p, dklen=32)``
(its own salt, independent of the Ethereum half), with associated data
``b"lepton-ledger/keystore/v1/x25519" + address (20 bytes) + x25519 public key (32 bytes)`` so that an X25519
section moved to another identity's file fails its tag. Defaults match eth-keyfile's scrypt (n=2**18, r=8,
p=1); ``scrypt_n`` lowers the cost for tests only.

Failures: a wrong password is ``WrongPassword`` (the Ethereum MAC check fails); a file that is not valid JSON,
lacks a member, or whose X25519 half fails to decrypt *after* the password was proven right is
``KeystoreCorrupted``. No error message ever contains key material or the password.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from .errors import LeptonError
from .settings import keystore_dir, keystore_password

__all__ = [
    "DEFAULT_SCRYPT_N",
    "KEYSTORE_DIR_ENV",
    "PASSWORD_ENV",
    "Identity",
    "IdentityExists",
    "InvalidIdentityName",
    "InvalidPrivateKey",
    "Keystore",
    "KeystoreCorrupted",
    "KeystoreError",
    "PasswordRequired",
    "UnknownIdentity",
    "UnlockedIdentity",
    "WrongPassword",
    "parse_private_key",
]

PASSWORD_ENV = "LEPTON_KEYSTORE_PASSWORD"
KEYSTORE_DIR_ENV = "LEPTON_KEYSTORE_DIR"
#: eth-keyfile's own scrypt default; both halves of a file cost the same to attack.
DEFAULT_SCRYPT_N = 2**18
_SCRYPT_R = 8
_SCRYPT_P = 1
_FORMAT_VERSION = 1
_AAD_PREFIX = b"lepton-ledger/keystore/v1/x25519"
# Names become file names: a conservative alphabet rules out path traversal and hidden files.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


# ---------------------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------------------


class KeystoreError(LeptonError):
    """Root of the keystore's errors."""


class WrongPassword(KeystoreError, ValueError):
    """The password does not open this identity's keyfile."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"wrong password for identity {name!r}")


class UnknownIdentity(KeystoreError, LookupError):
    """No identity of that name in the keystore."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no identity named {name!r} in the keystore")


class IdentityExists(KeystoreError, ValueError):
    """An identity of that name already exists; it is never overwritten by create or import."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"an identity named {name!r} already exists")


class KeystoreCorrupted(KeystoreError, ValueError):
    """A keyfile cannot be read: not JSON, a member missing or malformed, or its halves disagree."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"keystore file {str(path)!r} is corrupted: {reason}")


class InvalidIdentityName(KeystoreError, ValueError):
    """A name that cannot be an identity (it becomes a file name)."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"invalid identity name {name!r}: 1-64 characters, letters, digits, '.', '_' or '-', "
            "not starting with '.', '_' or '-'"
        )


class InvalidPrivateKey(KeystoreError, ValueError):
    """An imported private key is not 32 bytes / 64 hex digits, or not a valid secp256k1 key."""


class PasswordRequired(KeystoreError, ValueError):
    """No password was given and ``$LEPTON_KEYSTORE_PASSWORD`` is not set."""

    def __init__(self) -> None:
        super().__init__(f"a keystore password is required (argument, or ${PASSWORD_ENV})")


# ---------------------------------------------------------------------------------------------------------
# public objects
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """What anyone may know about an identity: its name, Ethereum address and X25519 public key."""

    name: str
    address: str
    x25519_public: bytes
    path: Path

    @property
    def x25519_public_hex(self) -> str:
        return self.x25519_public.hex()

    def __repr__(self) -> str:
        return f"Identity(name={self.name!r}, address={self.address}, x25519_public={self.x25519_public_hex})"


@dataclass(frozen=True, repr=False, eq=False)
class UnlockedIdentity:
    """An identity whose keys are decrypted in memory. ``repr``/``str`` show the name and public parts only.

    ``account`` signs transactions and EIP-712 messages; ``x25519_private`` opens envelopes.
    """

    identity: Identity
    account: LocalAccount = field(repr=False)
    x25519_private: X25519PrivateKey = field(repr=False)

    @property
    def name(self) -> str:
        return self.identity.name

    @property
    def address(self) -> str:
        return self.identity.address

    @property
    def x25519_public(self) -> bytes:
        return self.identity.x25519_public

    def x25519_private_bytes(self) -> bytes:
        """The raw 32-byte X25519 private key, for APIs that take bytes (the envelope's ``open``).

        A method rather than an attribute so that nothing that walks attributes (debuggers, ``vars``-based
        dumps) picks it up by accident.
        """
        return self.x25519_private.private_bytes_raw()

    def __repr__(self) -> str:
        return f"UnlockedIdentity(name={self.name!r}, address={self.address}, x25519_public={self.identity.x25519_public_hex})"

    __str__ = __repr__


# ---------------------------------------------------------------------------------------------------------
# the keystore
# ---------------------------------------------------------------------------------------------------------


def _resolve_password(password: str | None) -> str:
    if password is not None:
        return password
    from_env = keystore_password()
    if from_env is None:
        raise PasswordRequired()
    return from_env


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InvalidIdentityName(str(name))
    return name


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(password.encode("utf-8"))


def _aad(address: str, x25519_public: bytes) -> bytes:
    return _AAD_PREFIX + bytes.fromhex(address.removeprefix("0x")) + x25519_public


def _raw_public(private: X25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


# secp256k1's group order: a private key is an integer in [1, n-1]. eth-keys accepts 0, so check here.
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _in_range(raw: bytes) -> bool:
    return 0 < int.from_bytes(raw, "big") < _SECP256K1_N


def parse_private_key(private_key: str | bytes) -> bytes:
    """An Ethereum private key as 32 raw bytes, from 64 hex digits (optionally 0x-prefixed) or 32 bytes.

    Raises:
        InvalidPrivateKey: malformed or outside secp256k1's range; the message never quotes the input.
    """
    if isinstance(private_key, str):
        text = private_key.strip().removeprefix("0x").removeprefix("0X")
        if not re.fullmatch(r"[0-9a-fA-F]{64}", text):
            raise InvalidPrivateKey("a private key is 64 hex digits (optionally 0x-prefixed)")
        raw = bytes.fromhex(text)
    elif isinstance(private_key, (bytes, bytearray)):
        raw = bytes(private_key)
        if len(raw) != 32:
            raise InvalidPrivateKey("a private key is 32 bytes")
    else:
        raise InvalidPrivateKey("a private key is a hex string or 32 bytes")
    if not _in_range(raw):
        raise InvalidPrivateKey("not a valid secp256k1 private key (must be in 1 .. n-1)")
    return raw


class Keystore:
    """A folder of identities; ``Keystore()`` is the configured folder (settings.keystore_dir()).

    Args:
        directory: the folder; ``keystore_dir()`` when ``None``.
        scrypt_n: scrypt cost for files this instance *writes* (reading uses each file's own parameters).
            Lower it in tests only.
    """

    def __init__(self, directory: Path | str | None = None, *, scrypt_n: int = DEFAULT_SCRYPT_N) -> None:
        self.directory = Path(directory).expanduser() if directory is not None else keystore_dir()
        if scrypt_n < 2 or scrypt_n & (scrypt_n - 1):
            raise ValueError("scrypt_n must be a power of two, at least 2")
        self.scrypt_n = scrypt_n

    def __repr__(self) -> str:
        return f"Keystore({str(self.directory)!r})"

    # -- paths and files -------------------------------------------------------------------------------

    def path_of(self, name: str) -> Path:
        """The keyfile of ``name`` (which need not exist). Raises InvalidIdentityName."""
        return self.directory / f"{_check_name(name)}.json"

    def _ensure_dir(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _write(self, path: Path, document: dict[str, Any], *, overwrite: bool, name: str) -> None:
        """Write ``document`` to ``path`` atomically with mode 0600: a temp file in the same folder,
        fsync, then rename; a crash at any point leaves either the old file or the new one, never half.

        Raises IdentityExists when ``overwrite`` is false and ``path`` exists.
        """
        self._ensure_dir()
        data = json.dumps(document, indent=2, sort_keys=True).encode("utf-8")
        # mkstemp creates the file 0600 from the start, so the ciphertext is never world-readable, even briefly.
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=self.directory)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o600)
            if overwrite:
                os.replace(tmp, path)
            else:
                # link() refuses an existing target atomically, so two concurrent creates cannot both win.
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    raise IdentityExists(name) from None
                except OSError:  # a filesystem without hard links: check, then rename
                    if path.exists():
                        raise IdentityExists(name) from None
                    os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        self._fsync_dir()

    def _fsync_dir(self) -> None:
        # The rename is durable only once the directory entry is.
        with contextlib.suppress(OSError):
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def _read(self, name: str) -> tuple[Path, dict[str, Any]]:
        path = self.path_of(name)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise UnknownIdentity(name) from None
        try:
            document = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise KeystoreCorrupted(path, "not valid JSON") from None
        if not isinstance(document, dict):
            raise KeystoreCorrupted(path, "not a JSON object")
        return path, document

    def _identity_from(self, name: str, path: Path, document: dict[str, Any]) -> Identity:
        try:
            if document["version"] != 3 or not isinstance(document["crypto"], dict):
                raise KeystoreCorrupted(path, "not a version 3 keyfile")
            address = to_checksum_address("0x" + str(document["address"]).removeprefix("0x"))
            lepton = document["lepton"]
            if lepton["version"] != _FORMAT_VERSION:
                raise KeystoreCorrupted(path, f"unsupported lepton section version {lepton['version']!r}")
            public = bytes.fromhex(lepton["x25519"]["public"])
            if len(public) != 32:
                raise KeystoreCorrupted(path, "X25519 public key is not 32 bytes")
        except KeystoreCorrupted:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise KeystoreCorrupted(path, f"missing or malformed member ({type(exc).__name__})") from None
        return Identity(name=name, address=address, x25519_public=public, path=path)

    def _document(self, name: str, eth_key: bytes, x25519_private: X25519PrivateKey, password: str) -> dict[str, Any]:
        document: dict[str, Any] = dict(Account.encrypt(eth_key, password, kdf="scrypt", iterations=self.scrypt_n))
        address = Account.from_key(eth_key).address
        public = _raw_public(x25519_private)
        salt = os.urandom(16)
        nonce = os.urandom(12)
        kek = _scrypt(password, salt, self.scrypt_n, _SCRYPT_R, _SCRYPT_P)
        ciphertext = AESGCM(kek).encrypt(nonce, x25519_private.private_bytes_raw(), _aad(address, public))
        document["lepton"] = {
            "version": _FORMAT_VERSION,
            "name": name,
            "x25519": {
                "public": public.hex(),
                "kdf": "scrypt",
                "kdfparams": {"n": self.scrypt_n, "r": _SCRYPT_R, "p": _SCRYPT_P, "dklen": 32, "salt": salt.hex()},
                "cipher": "aes-256-gcm",
                "nonce": nonce.hex(),
                "ciphertext": ciphertext.hex(),
            },
        }
        return document

    # -- API -------------------------------------------------------------------------------------------

    def create(self, name: str, password: str | None = None) -> Identity:
        """Generate a new Ethereum key and X25519 key for ``name`` and store them encrypted.

        Raises:
            InvalidIdentityName, IdentityExists, PasswordRequired.
        """
        eth_key = os.urandom(32)
        while not _in_range(eth_key):  # probability ~2**-128; draw again rather than fail
            eth_key = os.urandom(32)
        return self._store(name, eth_key, X25519PrivateKey.generate(), password)

    def import_key(
        self,
        name: str,
        private_key: str | bytes,
        password: str | None = None,
        *,
        x25519_private_key: bytes | None = None,
    ) -> Identity:
        """Store an existing Ethereum private key (hex or 32 bytes) under ``name``, with a new X25519 key
        unless ``x25519_private_key`` (32 raw bytes) is given.

        Raises:
            InvalidIdentityName, IdentityExists, InvalidPrivateKey, PasswordRequired.
        """
        self.path_of(name)  # a bad name is reported before anything about the key
        eth_key = parse_private_key(private_key)
        if x25519_private_key is None:
            x_private = X25519PrivateKey.generate()
        else:
            if not isinstance(x25519_private_key, (bytes, bytearray)) or len(x25519_private_key) != 32:
                raise InvalidPrivateKey("an X25519 private key is 32 raw bytes")
            x_private = X25519PrivateKey.from_private_bytes(bytes(x25519_private_key))
        return self._store(name, eth_key, x_private, password)

    def _store(self, name: str, eth_key: bytes, x_private: X25519PrivateKey, password: str | None) -> Identity:
        path = self.path_of(name)
        secret = _resolve_password(password)
        if path.exists():  # fail before paying for scrypt; _write re-checks atomically
            raise IdentityExists(name)
        document = self._document(name, eth_key, x_private, secret)
        self._write(path, document, overwrite=False, name=name)
        return self._identity_from(name, path, document)

    def show(self, name: str) -> Identity:
        """The public parts of ``name`` (no password needed).

        Raises:
            InvalidIdentityName, UnknownIdentity, KeystoreCorrupted.
        """
        path, document = self._read(name)
        return self._identity_from(name, path, document)

    def list(self) -> list[Identity]:
        """Every identity in the folder, sorted by name. An empty list when the folder does not exist.

        Raises:
            KeystoreCorrupted: for the first file that cannot be read (named in the message).
        """
        return [*self._iter()]

    def scan(self) -> tuple[list[Identity], list[KeystoreCorrupted]]:
        """Every readable identity, sorted by name, and the error of every file that cannot be read: one damaged
        file does not hide the others."""
        identities: list[Identity] = []
        damaged: list[KeystoreCorrupted] = []
        for name in self._names():
            try:
                identities.append(self.show(name))
            except KeystoreCorrupted as exc:
                damaged.append(exc)
        return identities, damaged

    def _iter(self) -> Iterator[Identity]:
        for name in self._names():
            yield self.show(name)

    def _names(self) -> Iterator[str]:
        if not self.directory.is_dir():
            return
        for path in sorted(self.directory.glob("*.json")):
            if _NAME_RE.fullmatch(path.stem):
                yield path.stem

    def unlock(self, name: str, password: str | None = None) -> UnlockedIdentity:
        """Decrypt both keys of ``name``.

        Raises:
            InvalidIdentityName, UnknownIdentity, PasswordRequired,
            WrongPassword: the Ethereum keyfile's MAC check fails,
            KeystoreCorrupted: the file is malformed, or the password is right but the X25519 half does not
            decrypt or does not match its public key, or the decrypted key does not match the address.
        """
        path, document = self._read(name)
        identity = self._identity_from(name, path, document)
        secret = _resolve_password(password)
        try:
            eth_key = bytes(Account.decrypt(document, secret))
        except ValueError as exc:
            # eth-keyfile says "MAC mismatch" for a wrong password and nothing else that is a ValueError
            # on a well-formed file; anything else is a damaged file.
            if "MAC mismatch" in str(exc):
                raise WrongPassword(name) from None
            raise KeystoreCorrupted(path, "Ethereum keyfile does not decode") from None
        except (KeyError, TypeError, NotImplementedError):
            raise KeystoreCorrupted(path, "Ethereum keyfile does not decode") from None
        account = Account.from_key(eth_key)
        if account.address != identity.address:
            raise KeystoreCorrupted(path, "decrypted key does not match the stored address")
        try:
            section = document["lepton"]["x25519"]
            params = section["kdfparams"]
            if section["kdf"] != "scrypt" or section["cipher"] != "aes-256-gcm" or params["dklen"] != 32:
                raise KeystoreCorrupted(path, "unsupported X25519 kdf or cipher")
            kek = _scrypt(secret, bytes.fromhex(params["salt"]), int(params["n"]), int(params["r"]), int(params["p"]))
            raw = AESGCM(kek).decrypt(
                bytes.fromhex(section["nonce"]),
                bytes.fromhex(section["ciphertext"]),
                _aad(identity.address, identity.x25519_public),
            )
        except KeystoreCorrupted:
            raise
        except InvalidTag:
            raise KeystoreCorrupted(path, "X25519 key fails its authentication tag") from None
        except (KeyError, TypeError, ValueError, OverflowError, MemoryError):
            raise KeystoreCorrupted(path, "X25519 section is malformed") from None
        x_private = X25519PrivateKey.from_private_bytes(raw)
        if _raw_public(x_private) != identity.x25519_public:
            raise KeystoreCorrupted(path, "X25519 private key does not match its public key")
        return UnlockedIdentity(identity=identity, account=account, x25519_private=x_private)

    def change_password(self, name: str, old_password: str | None, new_password: str) -> Identity:
        """Re-encrypt ``name`` under ``new_password`` (same keys), replacing the file atomically.

        Raises:
            InvalidIdentityName, UnknownIdentity, WrongPassword, KeystoreCorrupted, PasswordRequired.
        """
        unlocked = self.unlock(name, old_password)
        document = self._document(name, bytes(unlocked.account.key), unlocked.x25519_private, new_password)
        path = self.path_of(name)
        self._write(path, document, overwrite=True, name=name)
        return self._identity_from(name, path, document)

    def delete(self, name: str) -> None:
        """Remove ``name``'s keyfile. Its keys are gone for good unless backed up.

        Raises:
            InvalidIdentityName, UnknownIdentity.
        """
        path = self.path_of(name)
        try:
            path.unlink()
        except FileNotFoundError:
            raise UnknownIdentity(name) from None
        self._fsync_dir()
