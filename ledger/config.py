"""Settings, read once from `FUNDFLOW_*` environment variables and `.env`, validated at start.

`rpc_url` unset means "start a local Hardhat node on chain_host:chain_port". In dev and test the operator
key defaults to Hardhat's well-known account #0; prod refuses that key and needs an explicit node URL.
"""

from __future__ import annotations

import os
import re
import stat
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, PositiveInt, SecretStr, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ledger.errors import ConfigError

__all__ = [
    "DEV_PASSPHRASE",
    "DEV_WEBHOOK_SECRET",
    "HARDHAT_DEV_KEY",
    "OWNER_ONLY_UMASK",
    "Environment",
    "Settings",
    "get_settings",
    "prepare_data_dir",
]

Environment = Literal["dev", "test", "prod"]

# Hardhat's account #0 (0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266), derived from the public
# "test test ... junk" mnemonic: anyone can spend from it, so it must never sign in prod.
HARDHAT_DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"

_KEY_HEX_LEN = 64

# Unlocks dev/test keystores only; prod refuses it.
DEV_PASSPHRASE = "fundflow-dev-only"

# Signs webhook deliveries in dev/test only; prod refuses it.
DEV_WEBHOOK_SECRET = "fundflow-dev-webhook-secret"


class Settings(BaseSettings):
    """All runtime settings; see the field descriptions (env var = FUNDFLOW_ + upper-case name)."""

    model_config = SettingsConfigDict(
        env_prefix="FUNDFLOW_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
        hide_input_in_errors=True,  # a rejected operator_key must not be echoed
    )

    env: Environment = Field("dev", description="dev, test or prod; prod refuses dev-only defaults.")
    rpc_url: str | None = Field(
        None,
        repr=False,  # node URLs often embed an API key
        description="JSON-RPC endpoint of the chain; unset = start a local Hardhat node.",
    )
    chain_host: str = Field("127.0.0.1", description="Host the local node binds to when rpc_url is unset.")
    chain_port: int = Field(8545, ge=1, le=65535, description="Port of the local node.")
    data_dir: Path = Field(Path("var"), description="Where the database, deployment file and caches live.")
    deployment_file: Path = Field(
        default_factory=lambda data: data["data_dir"] / "deployment.json",
        description="Deployed addresses; default data_dir/deployment.json.",
    )
    database_url: str = Field(
        default_factory=lambda data: f"sqlite:///{(data['data_dir'] / 'fundflow.db').as_posix()}",
        repr=False,  # may carry a password
        description="SQLAlchemy URL; default SQLite at data_dir/fundflow.db.",
    )
    confirmations: int = Field(
        0, ge=0, description="Blocks a log must be buried under before it is mirrored."
    )
    poll_interval: float = Field(
        0.1, gt=0, description="Seconds between polls of the node for new blocks (one round trip each)."
    )
    decode_worker_min_logs: int = Field(
        2000,
        ge=0,
        description="A backfill whose next range should hold this many logs (at the density just seen) "
        "starts the indexer's decoding worker process for the rest of the backfill (0: never; decode in the "
        "indexer's own process).",
    )
    max_reorg_depth: int = Field(
        64, ge=1, description="Deepest reorg the indexer undoes; a deeper one stops it loudly instead."
    )
    tx_timeout: float = Field(60.0, gt=0, description="Seconds to wait for a transaction receipt.")
    api_rpc_timeout: float = Field(
        5.0,
        gt=0,
        description="Seconds the API waits for the node on one request (a down node is a 503 this soon).",
    )
    operator_key: SecretStr | None = Field(
        None, description="Private key (0x + 64 hex) of the operator account that deploys and administers."
    )

    # ---- post-loan monitoring (ledger/monitoring/rules.py); time windows are measured on the chain's clock
    circular_flow_hops: int = Field(
        3,
        ge=1,
        le=32,
        description="Money back at the borrower (or a linked party) within this many hops alerts.",
    )
    pass_through_share: float = Field(
        0.8, gt=0, le=1, description="Share of a disbursement leaving for undeclared payees that alerts."
    )
    pass_through_hours: float = Field(24.0, gt=0, description="... when it leaves within this many hours.")
    structuring_window_hours: float = Field(
        72.0, gt=0, description="Window in which payments just under the approval threshold are counted."
    )
    structuring_count: int = Field(
        3, ge=2, description="That many near-threshold payments in the window alert."
    )
    structuring_margin: float = Field(
        0.1, gt=0, lt=1, description="'Just under' = within this fraction below the approval threshold."
    )
    concentration_share: float = Field(
        0.5, gt=0, le=1, description="Share of the principal ending at one payee not named in the loan."
    )
    unconfirmed_days: float = Field(7.0, gt=0, description="Days a payee has to confirm a payment.")
    collateral_stale_days: float = Field(180.0, gt=0, description="Age after which a valuation is stale.")
    prohibited_purposes: list[int] = Field(
        default_factory=lambda: [28, 29, 30, 31],
        description="Purpose codes never allowed (JSON list; default real estate, securities, onward "
        "lending, repaying other debt).",
    )
    site_visit_interval_days: list[PositiveInt] = Field(
        default_factory=lambda: [90, 30, 30, 30, 30],
        min_length=5,
        max_length=5,
        description="Days between site visits (实地走访) per risk class 正常, 关注, 次级, 可疑, 损失 "
        "(JSON list of five; default quarterly for normal, monthly for special mention and worse).",
    )
    preservation_warning_days: int = Field(
        7, ge=0, description="Days before an asset-preservation deadline lapses that it alerts (保全期限)."
    )
    monitor_sweep_hours: float = Field(
        1.0,
        gt=0,
        description="Chain-time interval at which every open loan is re-checked (time-based rules).",
    )
    webhook_urls: list[str] = Field(
        default_factory=list, description="URLs that receive new alerts as signed JSON (JSON list)."
    )
    webhook_secret: SecretStr | None = Field(
        None, description="HMAC-SHA256 key for the X-Fundflow-Signature header of webhook deliveries."
    )
    webhook_max_attempts: int = Field(
        25, ge=1, description="Attempts per webhook delivery before it is marked failed."
    )

    # ---- behaviour score (issue 21; ledger/scoring)
    score_label_dpd: int = Field(
        90,
        ge=1,
        le=3650,
        description="The behaviour score's label: a loan is bad when it reaches this many days past due "
        "within the horizon.",
    )
    score_horizon_days: int = Field(
        365, ge=1, le=3650, description="The behaviour score's label window: days after the as-of date."
    )
    # issue 21 part B: what the score does once it exists (ledger/scoring/bands.py, monitoring rules)
    score_visit_days: PositiveInt = Field(
        30,
        description="Days between site visits, at most, for a loan whose behaviour score is in band D or E "
        "(bank policy; shortens the risk class's interval, never lengthens it).",
    )
    demo_scoring: bool = Field(
        True,
        description="`fundflow up`: simulate a small scored history under its own bank before the demo story "
        "and score the demo loans (0 skips it, about a minute faster).",
    )

    # ---- loan servicing (issue 18; ledger/protocol/servicing.py)
    penalty_rate_multiplier: Decimal = Field(
        Decimal("1.5"),
        ge=1,
        le=10,
        description="Penalty interest (罚息) rate on overdue amounts = the contract rate x this, unless the "
        "loan's terms state a penalty_rate.",
    )
    repayment_allocation_order: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["penalty", "interest", "principal"],
        description="Order a repayment pays what is due (comma-separated: penalty,interest,principal); "
        "anything left pays principal ahead of schedule.",
    )
    loan_type_policies: dict[str, dict[str, dict[str, Any]]] = Field(
        default_factory=dict,
        description="Per-bank overrides of the loan types' purpose sets and entrusted-payment thresholds "
        "(JSON: "
        '{"<bank org id>|*": {"working_capital": {"entrusted_above": "10000000.00", "prohibited": [28]}}}; '
        "see ledger/protocol/loantypes.py for the defaults).",
    )
    self_paid_report_days: float = Field(
        30.0,
        gt=0,
        description="Days a borrower has to report (record) its payments out of a self-paid tranche.",
    )
    classification_single_person: bool = Field(
        False,
        description="dev only: one lender account may propose and approve its own class change "
        "(maker-checker needs two people everywhere else).",
    )

    keystore_dir: Path = Field(
        default_factory=lambda data: data["data_dir"] / "keystore",
        description="Encrypted participant keystores (eth-account JSON v3, scrypt).",
    )
    keystore_passphrase: SecretStr | None = Field(
        None, description="Passphrase that unlocks the keystores; dev and test default to a dev-only value."
    )
    keystore_passphrase_file: Path | None = Field(
        None,
        description="File holding the keystore passphrase (e.g. a mounted secret); wins over the variable.",
    )
    keystore_scrypt_n: int = Field(
        262_144, ge=1024, description="scrypt cost for new keystores (2^18 as geth; lower only for dev)."
    )
    participants_file: Path = Field(
        default_factory=lambda data: data["data_dir"] / "participants.json",
        description="Off-chain directory of participants: names, org ids, accounts, roles.",
    )

    api_host: str = Field("127.0.0.1", description="Address the HTTP API binds to.")
    api_port: int = Field(8000, ge=1, le=65535, description="Port of the HTTP API.")
    api_wait_timeout: float = Field(
        15.0, gt=0, description="Seconds a write with ?wait=true waits for the indexer to mirror it."
    )
    documents_dir: Path = Field(
        default_factory=lambda data: data["data_dir"] / "documents",
        description="Where uploaded evidence documents are stored, one file per keccak256 hash.",
    )
    document_max_bytes: int = Field(
        10 * 1024 * 1024, ge=1, description="Largest evidence document the API accepts, in bytes."
    )
    max_body_bytes: int = Field(
        1024 * 1024, ge=1024, description="Largest request body (other than a document upload), in bytes."
    )
    max_body_depth: int = Field(
        64,
        ge=4,
        le=500,  # well under Python's recursion limit of 1000, which the parsers' own guards use
        description="Deepest nesting of arrays and objects a JSON request body may have; deeper is a 422 "
        "before any parser runs.",
    )
    rate_limit: int | None = Field(
        None,
        ge=0,
        description="Requests per minute per participant, counted after its token or session is verified; "
        "0 = off. Default: 600 in prod, off in dev and test.",
    )
    rate_limit_burst: int | None = Field(
        None,
        ge=1,
        description="Requests a participant may make at once before the rate applies (default: rate).",
    )
    auth_failure_limit: int | None = Field(
        None,
        ge=0,
        description="Failed authentications (401) per minute per client address; past it every request "
        "from that address is a 429 until the budget refills. 0 = off. Default: 30 in prod, off in dev "
        "and test.",
    )
    rate_limit_table_size: int = Field(
        10_000,
        ge=16,
        description="Most callers (participants or client addresses) the rate limiter remembers at once; "
        "past it, buckets that have refilled are dropped first, then the least recently used.",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins allowed to call the API from a browser (comma-separated); none by default.",
    )
    # --- issue 23: API replicas that die mid-write
    idempotency_lease: float = Field(
        120.0,
        gt=0,
        description="Seconds a write holds its Idempotency-Key while it is being processed. A replica that "
        "died mid-write leaves its key pending; a retry with the same key takes it over once the lease ran "
        "out (resending the write's journaled transactions unchanged). Each transaction journaled renews it; "
        "a sender stalled past it stops before its next broadcast. Keep it above tx_timeout.",
    )

    # --- issue 20: dates in the bank's time zone -------------------------------------------------------
    bank_timezone: str = Field(
        "Asia/Shanghai",
        description="IANA time zone in which block times are shown to people (pages, answers, exports).",
    )

    @field_validator("bank_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not an IANA time zone; write one like Asia/Shanghai or Europe/London"
            ) from None
        return value

    @property
    def bank_zone(self) -> ZoneInfo:
        """`bank_timezone` as a tzinfo."""
        return ZoneInfo(self.bank_timezone)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [o.strip() for o in value.split(",") if o.strip()]
        return value

    @property
    def effective_rate_limit(self) -> int:
        """Requests per minute per participant; 0 means unlimited."""
        if self.rate_limit is not None:
            return self.rate_limit
        return 600 if self.env == "prod" else 0

    @property
    def effective_auth_failure_limit(self) -> int:
        """Failed authentications per minute per client address; 0 means unlimited."""
        if self.auth_failure_limit is not None:
            return self.auth_failure_limit
        return 30 if self.env == "prod" else 0

    @field_validator("rpc_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("operator_key", mode="before")
    @classmethod
    def _normalise_key(cls, value: Any) -> Any:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None
        if not isinstance(raw, str):
            raise ValueError("operator_key must be a hex string")
        key = raw.strip().lower()
        if not key.startswith("0x"):
            key = "0x" + key
        digits = key[2:]
        if len(digits) != _KEY_HEX_LEN or any(c not in "0123456789abcdef" for c in digits):
            # Never echo the value: it is a secret even when malformed.
            raise ValueError("operator_key must be 32 bytes as hex (0x followed by 64 hex digits)")
        return SecretStr(key)

    @field_validator("loan_type_policies")
    @classmethod
    def _check_policies(cls, value: dict[str, Any]) -> dict[str, Any]:
        from ledger.protocol.loantypes import parse_policies  # validated at start, used by the rules

        try:
            parse_policies(value)
        except (ValueError, KeyError, ArithmeticError) as exc:
            raise ValueError(f"loan_type_policies: {exc}") from exc
        return value

    @field_validator("repayment_allocation_order", mode="before")
    @classmethod
    def _split_order(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if sorted(value) != ["interest", "penalty", "principal"]:
            raise ValueError(
                "name each of penalty, interest and principal once, e.g. penalty,interest,principal"
            )
        return value

    @model_validator(mode="after")
    def _check_env(self) -> Settings:
        if self.classification_single_person and self.env != "dev":
            raise ConfigError(
                "FUNDFLOW_CLASSIFICATION_SINGLE_PERSON is set outside dev: a class change needs a second "
                "person to approve it (maker-checker).",
                hint="Unset FUNDFLOW_CLASSIFICATION_SINGLE_PERSON, or run with FUNDFLOW_ENV=dev.",
            )
        if self.env == "prod":
            if self.operator_key is not None and self.operator_key.get_secret_value() == HARDHAT_DEV_KEY:
                raise ConfigError(
                    "FUNDFLOW_OPERATOR_KEY is Hardhat's public development key, which anyone can sign with.",
                    hint="Set FUNDFLOW_OPERATOR_KEY to the operator's own private key (or leave it unset "
                    "for a read-only process), or run with FUNDFLOW_ENV=dev.",
                )
            if self.rpc_url is None:
                raise ConfigError(
                    "FUNDFLOW_RPC_URL is unset, which means 'start a local development chain'; "
                    "prod needs a real node.",
                    hint="Set FUNDFLOW_RPC_URL to the consortium node's JSON-RPC URL.",
                )
            if self.webhook_urls and (
                self.webhook_secret is None or self.webhook_secret.get_secret_value() == DEV_WEBHOOK_SECRET
            ):
                raise ConfigError(
                    "webhook URLs are configured but FUNDFLOW_WEBHOOK_SECRET is unset or the public dev "
                    "value, so receivers could not tell our alerts from forged ones.",
                    hint="Set FUNDFLOW_WEBHOOK_SECRET to a random value shared with the receivers.",
                )
            if self.keystore_passphrase_file is None and (
                self.keystore_passphrase is None
                or self.keystore_passphrase.get_secret_value() == DEV_PASSPHRASE
            ):
                raise ConfigError(
                    "no keystore passphrase is set for prod (the dev default is public).",
                    hint="Set FUNDFLOW_KEYSTORE_PASSPHRASE_FILE to a file holding the passphrase, or "
                    "FUNDFLOW_KEYSTORE_PASSPHRASE.",
                )
        else:
            if self.operator_key is None:
                self.operator_key = SecretStr(HARDHAT_DEV_KEY)
            if self.keystore_passphrase is None:
                self.keystore_passphrase = SecretStr(DEV_PASSPHRASE)
            if self.webhook_secret is None:
                self.webhook_secret = SecretStr(DEV_WEBHOOK_SECRET)
        return self

    def passphrase(self) -> str:
        """The keystore passphrase: from the file if one is configured, else the variable."""
        if self.keystore_passphrase_file is not None:
            try:
                return self.keystore_passphrase_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    f"cannot read the keystore passphrase file {self.keystore_passphrase_file} "
                    f"({exc.strerror})",
                    hint="Check FUNDFLOW_KEYSTORE_PASSPHRASE_FILE and the file's permissions.",
                ) from exc
        if self.keystore_passphrase is None:
            raise ConfigError("no keystore passphrase is set", hint="Set FUNDFLOW_KEYSTORE_PASSPHRASE_FILE.")
        return self.keystore_passphrase.get_secret_value()

    @property
    def chain_url(self) -> str:
        """The JSON-RPC URL to talk to: `rpc_url`, or the local node's."""
        return self.rpc_url or f"http://{self.chain_host}:{self.chain_port}"

    @property
    def starts_local_chain(self) -> bool:
        """True when no external node is configured and a local one must be started."""
        return self.rpc_url is None

    def redacted(self) -> dict[str, Any]:
        """The settings as plain values safe to print or log: keys hidden, URL passwords masked."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "**********"
            elif name in ("rpc_url", "database_url") and isinstance(value, str):
                value = mask_url(value)
            elif isinstance(value, Path):
                value = str(value)
            out[name] = value
        return out


def mask_url(url: str) -> str:
    """`url` safe to print: a password, the query and key-like path segments (node providers put API keys
    in the path, e.g. /v3/<key>) become ***."""
    parts = urlsplit(url)
    segments = parts.path.split("/")
    if parts.password is None and not parts.query and not any(_KEY_LIKE.fullmatch(seg) for seg in segments):
        return url  # nothing to hide; rebuilding could also turn sqlite:///relative into sqlite:/relative
    netloc = parts.netloc
    if parts.password is not None:
        host = netloc.rsplit("@", 1)[1]
        netloc = f"{parts.username or ''}:***@{host}"
    path = "/".join("***" if _KEY_LIKE.fullmatch(seg) else seg for seg in segments)
    return urlunsplit(parts._replace(netloc=netloc, path=path, query="***" if parts.query else ""))


_KEY_LIKE = re.compile(r"[A-Za-z0-9_\-]{20,}")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, loaded on first use; `get_settings.cache_clear()` reloads them.

    Raises `ConfigError` naming every invalid variable (never its value when it is a secret).
    """
    try:
        return Settings()
    except PydanticValidationError as exc:
        problems = "; ".join(
            f"FUNDFLOW_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors(include_input=False)
        )
        raise ConfigError(f"Invalid settings: {problems}") from exc


OWNER_ONLY_UMASK = 0o077


def prepare_data_dir(data_dir: Path | None) -> None:
    """Make what the process writes readable by its user only: files 0600, directories 0700.

    Sets the process umask to 0o077, once, where the program starts (`fundflow`'s `main`), before anything
    is written: the SQLite database and the -wal/-shm/-journal files SQLite itself creates beside it, the
    writer lock, the deployment record, keystores, documents, the participants file, the node's log and
    every file added later are created owner-only with no chmod of their own. A umask rather than a chmod
    where each file is made, because some are made by code this project does not write (SQLite's C library,
    a child process's log) and a new kind of file should not depend on someone remembering a chmod.
    `data_dir`, if it exists (an earlier version left it 0755 and its files 0644), is tightened the same way:
    the directory and everything under it lose their group and other bits. It is not created here: the
    first writer creates it, 0700 under the umask, so a command that writes nothing leaves no directory.
    """
    os.umask(OWNER_ONLY_UMASK)
    if data_dir is None or not data_dir.is_dir():
        return
    for root, dirs, files in os.walk(data_dir):
        for name in (*dirs, *files):
            path = os.path.join(root, name)
            mode = os.lstat(path).st_mode
            if not stat.S_ISLNK(mode) and mode & OWNER_ONLY_UMASK:
                os.chmod(path, stat.S_IMODE(mode) & ~OWNER_ONLY_UMASK)
    data_dir.chmod(0o700)
