"""Participants' signing keys, encrypted at rest (eth-account keystore JSON v3, scrypt).

A key is only ever decrypted in memory, with a passphrase given by environment or file; neither the key nor
the passphrase is ever logged or put in an error message.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.errors import ConfigError, NotFoundError, ValidationError

__all__ = ["Keystore"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class Keystore:
    """A directory of encrypted keys, one file per participant account name."""

    def __init__(self, directory: Path, passphrase: str, *, scrypt_n: int = 262_144) -> None:
        self.directory = directory
        self._passphrase = passphrase
        self._scrypt_n = scrypt_n
        self._unlocked: dict[str, LocalAccount] = {}

    def __repr__(self) -> str:  # never show the passphrase
        return f"Keystore({str(self.directory)!r})"

    def path_for(self, name: str) -> Path:
        if not _NAME.match(name):
            raise ValidationError(
                f"account name {name!r} is not usable as a keystore name",
                hint="use 1-64 lower-case letters, digits, '-' or '_', starting with a letter or digit",
            )
        return self.directory / f"{name}.json"

    def exists(self, name: str) -> bool:
        return self.path_for(name).exists()

    def create(self, name: str) -> LocalAccount:
        """Generate a fresh key for `name` and store it encrypted; refuses to overwrite an existing one."""
        path = self.path_for(name)
        if path.exists():
            raise ValidationError(
                f"a key named {name!r} already exists in {self.directory}",
                hint="pick another name, or rotate it with `fundflow participants rotate`",
            )
        account: LocalAccount = Account.create()
        self._write(path, account)
        self._unlocked[name] = account
        return account

    def import_key(self, name: str, account: LocalAccount) -> LocalAccount:
        """Store an existing key under `name` (e.g. one generated elsewhere); refuses to overwrite."""
        path = self.path_for(name)
        if path.exists():
            raise ValidationError(
                f"a key named {name!r} already exists in {self.directory}", hint="pick another name"
            )
        self._write(path, account)
        self._unlocked[name] = account
        return account

    def replace(self, name: str) -> LocalAccount:
        """A new key for `name` (key rotation). The old file is kept as `<name>.json.<address>.retired`."""
        path = self.path_for(name)
        if path.exists():
            old = json.loads(path.read_text())
            path.rename(path.with_suffix(f".json.0x{old.get('address', 'unknown')}.retired"))
        self._unlocked.pop(name, None)
        account: LocalAccount = Account.create()
        self._write(path, account)
        self._unlocked[name] = account
        return account

    def unlock(self, name: str) -> LocalAccount:
        if name in self._unlocked:
            return self._unlocked[name]
        path = self.path_for(name)
        try:
            encrypted = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise NotFoundError(
                f"no key named {name!r} in {self.directory}",
                hint="add the participant with `fundflow participants add`",
            ) from exc
        try:
            key = Account.decrypt(encrypted, self._passphrase)
        except ValueError:
            raise ConfigError(
                f"cannot unlock the key {name!r}: wrong passphrase or damaged keystore file",
                hint="check FUNDFLOW_KEYSTORE_PASSPHRASE(_FILE); it must be the one the key was created with",
            ) from None
        account: LocalAccount = Account.from_key(key)
        self._unlocked[name] = account
        return account

    def _write(self, path: Path, account: LocalAccount) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        encrypted = Account.encrypt(account.key, self._passphrase, kdf="scrypt", iterations=self._scrypt_n)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".key-")
        with os.fdopen(fd, "w") as f:
            json.dump(encrypted, f)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
