"""Onboarding participants: the off-chain directory (names) and the on-chain registration (ids, roles).

An organisation's name never goes on chain: it gets a random 32-byte org id, and only a hash of its profile
(name plus a random salt) is recorded, so a small business's name cannot be read or guessed from the chain.
Every step checks chain state first, so running an onboarding again (after a crash, say) does nothing twice.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address

from ledger.chain.contract import AUDITOR_ROLE, ENTERPRISE_ROLE, LENDER_ROLE, LedgerContract
from ledger.chain.keystore import Keystore
from ledger.errors import NotFoundError, ValidationError

__all__ = [
    "PARTICIPANT_ROLES",
    "ROLES",
    "THIRD_PARTY_ROLES",
    "Directory",
    "Participant",
    "onboard",
    "remove",
    "rotate",
    "slugify",
]

ROLES: dict[str, str] = {"lender": LENDER_ROLE, "enterprise": ENTERPRISE_ROLE, "auditor": AUDITOR_ROLE}
# Third parties (issue 19): a registered organisation with no business role on chain; a loan's lender engages
# it per loan (fileRecord kinds 4-6), and only then may it act on that loan (an appraiser signs valuations).
THIRD_PARTY_ROLES: tuple[str, ...] = ("appraiser", "law_firm", "collection_agency")
PARTICIPANT_ROLES: tuple[str, ...] = (*ROLES, *THIRD_PARTY_ROLES)


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:64]
    if not slug:
        raise ValidationError(
            f"{name!r} gives an empty account name", hint="pass --key-name with ASCII letters"
        )
    return slug


@dataclass
class Participant:
    """One organisation and its accounts (one account per key name)."""

    name: str
    role: str
    org_id: str
    profile_salt: str
    accounts: dict[str, str] = field(default_factory=dict)  # key name -> address

    @property
    def profile_hash(self) -> str:
        return (
            "0x"
            + keccak(text=json.dumps({"name": self.name, "salt": self.profile_salt}, sort_keys=True)).hex()
        )


class Directory:
    """The participants file (JSON), written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._items: dict[str, Participant] = {}
        if path.exists():
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise ValidationError(
                    f"participants file {path} is not valid JSON ({exc})", hint="restore it from a backup"
                ) from exc
            self._items = {k: Participant(**v) for k, v in raw.get("participants", {}).items()}

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._items.values())

    def get(self, name: str) -> Participant:
        try:
            return self._items[name]
        except KeyError:
            raise NotFoundError(
                f"no participant named {name!r}", hint="`fundflow participants list` shows who is registered"
            ) from None

    def find(self, name: str) -> Participant | None:
        return self._items.get(name)

    def by_address(self, address: str) -> tuple[Participant, str] | None:
        wanted = to_checksum_address(address)
        for p in self._items.values():
            for key_name, a in p.accounts.items():
                if a == wanted:
                    return p, key_name
        return None

    def put(self, participant: Participant) -> None:
        self._items[participant.name] = participant
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"participants": {k: asdict(v) for k, v in sorted(self._items.items())}}
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".participants-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, ensure_ascii=False)
            f.write("\n")
        os.replace(tmp, self.path)


def onboard(
    ledger: LedgerContract,
    operator: LocalAccount,
    directory: Directory,
    keystore: Keystore,
    *,
    name: str,
    role: str,
    key_name: str | None = None,
    address: str | None = None,
) -> tuple[Participant, str]:
    """Register `name` (if new) with one more account holding `role`; returns the participant and address.

    Without `address`, a fresh key is generated into the keystore under `key_name` (default: the slug of
    the name). Safe to run again: each on-chain step is skipped when already done.
    """
    if role not in PARTICIPANT_ROLES:
        raise ValidationError(f"unknown role {role!r}", hint=f"use one of: {', '.join(PARTICIPANT_ROLES)}")
    participant = directory.find(name)
    if participant is None:
        participant = Participant(
            name=name,
            role=role,
            org_id="0x" + secrets.token_bytes(32).hex(),
            profile_salt=secrets.token_hex(16),
        )
    elif participant.role != role:
        raise ValidationError(
            f"{name!r} is registered as {participant.role}, not {role}",
            hint="one organisation has one business role; register the other role under another name",
        )
    key_name = key_name or slugify(name)
    if address is None:
        if key_name in participant.accounts:
            address = participant.accounts[key_name]
        elif keystore.exists(key_name):
            address = keystore.unlock(key_name).address
        else:
            address = keystore.create(key_name).address
    address = to_checksum_address(address)
    participant.accounts[key_name] = address
    directory.put(participant)  # remember the org id before the chain does, so a crash cannot orphan it

    if not ledger.organization_exists(participant.org_id):
        ledger.register_organization(operator, participant.org_id, participant.profile_hash)
    current = ledger.organization_of(address)
    if int(current, 16) == 0:
        ledger.add_account(operator, participant.org_id, address)
    elif current != participant.org_id:
        raise ValidationError(
            f"account {address} already belongs to another organisation ({current})",
            hint="each account belongs to exactly one organisation; generate a new key",
        )
    if role in ROLES and not ledger.has_role(ROLES[role], address):
        ledger.grant_role(operator, ROLES[role], address)
    return participant, address


def remove(
    ledger: LedgerContract, operator: LocalAccount, directory: Directory, name: str, key_name: str
) -> str:
    """Detach one account from its organisation on chain (its roles go with it, at once)."""
    participant = directory.get(name)
    try:
        address = participant.accounts[key_name]
    except KeyError:
        raise NotFoundError(
            f"{name!r} has no account named {key_name!r}", hint="see `participants list`"
        ) from None
    if int(ledger.organization_of(address), 16) != 0:
        ledger.remove_account(operator, address)
    del participant.accounts[key_name]
    directory.put(participant)
    return address


def rotate(
    ledger: LedgerContract,
    operator: LocalAccount,
    directory: Directory,
    keystore: Keystore,
    name: str,
    key_name: str,
) -> tuple[str, str]:
    """Replace an account's key: the new address joins the organisation with the same role, then the old
    one is removed. Loans belong to organisations, so a lender keeps servicing its loans; lots held by the
    old address stay spendable by the loan's lender. Returns (old, new) addresses."""
    participant = directory.get(name)
    old = participant.accounts.get(key_name)
    if old is None:
        raise NotFoundError(f"{name!r} has no account named {key_name!r}", hint="see `participants list`")
    new = keystore.replace(key_name).address
    participant.accounts[key_name] = new
    directory.put(participant)
    ledger.add_account(operator, participant.org_id, new)
    if participant.role in ROLES:
        ledger.grant_role(operator, ROLES[participant.role], new)
    if int(ledger.organization_of(old), 16) != 0:
        ledger.remove_account(operator, old)
    return old, new
