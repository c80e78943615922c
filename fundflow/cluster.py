"""`fundflow up --replicas N` (`make cluster`): the production shape of docs/deployment.md on one machine.

A local chain, a PostgreSQL database of its own (created on the server named by FUNDFLOW_CLUSTER_DATABASE_URL,
dropped when the cluster stops), N API replicas (`fundflow serve`, one process each) behind HAProxy from
Debian's packages, and two indexers (`fundflow index`): the first takes the PostgreSQL advisory lock and
leads, the second waits on it as the standby.

Every child runs in one process group of its own and gets SIGKILL from the kernel if this process dies
(PR_SET_PDEATHSIG), so Ctrl-C, SIGTERM or even a SIGKILL of the parent leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import sqlalchemy as sa

from ledger.chain.localchain import LocalChain, die_with_parent, free_port
from ledger.config import Settings
from ledger.errors import FundflowError
from ledger.store.db import create_db_engine, migrate

__all__ = ["DEFAULT_SERVER_URL", "Cluster", "Member", "haproxy_config"]

DEFAULT_SERVER_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@dataclass
class Member:
    """One process of the cluster: an API replica, an indexer or the load balancer."""

    name: str
    command: list[str]
    log: Path
    port: int | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


def haproxy_config(port: int, replicas: list[tuple[str, int]]) -> str:
    """HAProxy in front of the replicas. Requests are hashed on the Authorization header (consistent hashing):
    each participant's writes go to one replica while it is up, so the nonce counter of its key, kept per
    process, stays right; requests without the header (health, dashboard sign-in) go round robin. A replica
    that fails three health checks a second apart is taken out and its participants move to the others; a
    request whose connection a dead replica refused goes to another at once (nothing reached the dead one).
    A request a replica accepted is never replayed by the balancer: the client retries it with its
    Idempotency-Key, which the replicas share through the database."""
    servers = "\n".join(
        f"    server {name} 127.0.0.1:{p} check inter 1s fall 3 rise 2" for name, p in replicas
    )
    return f"""# written by `fundflow up --replicas`; regenerated on every start
global
    maxconn 4096

defaults
    mode http
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    timeout check 5s
    retries 2
    option redispatch
    retry-on conn-failure
    # one connection per request to the replicas: uvicorn closes idle kept-alive connections after 5 s, and a
    # request sent on one just as it closes would come back as a 502
    option http-server-close

frontend api
    bind 127.0.0.1:{port}
    default_backend replicas

backend replicas
    balance hdr(Authorization)
    hash-type consistent
    option httpchk GET /v1/health
    http-check expect status 200
{servers}
"""


@dataclass
class Cluster:
    """The whole cluster; `start()` then `stop()` (or use as a context manager)."""

    settings: Settings
    replicas: int = 2
    server_url: str = DEFAULT_SERVER_URL
    lb_port: int | None = None
    work_dir: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    chain: LocalChain | None = None
    database_url: str = ""
    members: dict[str, Member] = field(default_factory=dict)
    _database: str | None = None
    _pgid: int | None = None

    # ------------------------------------------------------------------------------------------ start

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.lb_port}"

    @property
    def dir(self) -> Path:
        assert self.work_dir is not None
        return self.work_dir

    def start(self) -> Cluster:
        if self.replicas < 1:
            raise FundflowError("a cluster needs at least one API replica", hint="--replicas 2")
        if not self.settings.starts_local_chain:
            # It deploys a fresh ledger on every start: never on a shared network.
            raise FundflowError(
                "the cluster runs on a local chain of its own, and FUNDFLOW_RPC_URL is set",
                hint="unset FUNDFLOW_RPC_URL for `fundflow up --replicas`",
            )
        haproxy = shutil.which("haproxy") or next(
            (p for p in ("/usr/sbin/haproxy", "/usr/bin/haproxy") if Path(p).exists()), None
        )
        if haproxy is None:
            raise FundflowError(
                "HAProxy is not installed", hint="apt-get install -y haproxy (`make cluster` does it)"
            )
        self.work_dir = self.work_dir or self.settings.data_dir / "cluster"
        if self.dir.exists():
            shutil.rmtree(self.dir)  # the local chain is new on every start: so is everything built on it
        self.dir.mkdir(parents=True)
        self.lb_port = self.lb_port or self.settings.api_port
        try:
            self._start_chain()
            self._create_database()
            self._deploy()
            for i in (1, 2):
                self._start_indexer(f"indexer-{i}")
                if i == 1:
                    self.wait_for(lambda: self.leader() == "indexer-1", 60, "indexer-1 to take the lock")
            for i in range(1, self.replicas + 1):
                self._start_replica(f"api-{i}")
            for i in range(1, self.replicas + 1):
                self._wait_healthy(self.members[f"api-{i}"])
            self._start_haproxy(haproxy)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_chain(self) -> None:
        self.chain = LocalChain(
            self.settings.chain_port, log_path=self.dir / "chain.log", die_with_parent=True
        ).start()

    @property
    def chain_url(self) -> str:
        return self.chain.url if self.chain is not None else self.settings.chain_url

    def _create_database(self) -> None:
        server = sa.make_url(self.server_url)
        self._database = f"fundflow_cluster_{secrets.token_hex(4)}"
        admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{self._database}"'))
        except sa.exc.OperationalError as exc:
            self._database = None
            raise FundflowError(
                f"cannot create the cluster's database on {server.render_as_string(hide_password=True)} "
                f"({exc.orig})",
                hint="start PostgreSQL or point FUNDFLOW_CLUSTER_DATABASE_URL at a server you may create "
                "databases on",
            ) from exc
        finally:
            admin.dispose()
        self.database_url = server.set(database=self._database).render_as_string(hide_password=False)
        engine = create_db_engine(self.database_url)
        try:
            migrate(engine)  # once, before any replica or indexer opens it
        finally:
            engine.dispose()

    def child_settings(self) -> Settings:
        return self.settings.model_copy(
            update={
                "data_dir": self.dir,
                "deployment_file": self.dir / "deployment.json",
                "keystore_dir": self.dir / "keystore",
                "participants_file": self.dir / "participants.json",
                "documents_dir": self.dir / "documents",
                "database_url": self.database_url,
                "rpc_url": self.chain_url,
            }
        )

    def env(self, name: str) -> dict[str, str]:
        s = self.child_settings()
        url = sa.make_url(self.database_url).update_query_dict({"application_name": name})
        env = dict(os.environ) | {
            "FUNDFLOW_DATA_DIR": str(s.data_dir),
            "FUNDFLOW_DEPLOYMENT_FILE": str(s.deployment_file),
            "FUNDFLOW_KEYSTORE_DIR": str(s.keystore_dir),
            "FUNDFLOW_PARTICIPANTS_FILE": str(s.participants_file),
            "FUNDFLOW_DOCUMENTS_DIR": str(s.documents_dir),
            "FUNDFLOW_DATABASE_URL": url.render_as_string(hide_password=False),
            "FUNDFLOW_RPC_URL": self.chain_url,
            "FUNDFLOW_KEYSTORE_SCRYPT_N": str(self.settings.keystore_scrypt_n),
        }
        return env | self.extra_env

    def _deploy(self) -> None:
        from eth_account import Account

        from fundflow.compose import chain_client
        from ledger.chain.deploy import deploy_ledger

        s = self.child_settings()
        assert s.operator_key is not None
        deployment = deploy_ledger(
            chain_client(s), Account.from_key(s.operator_key.get_secret_value()), vouchers=True
        )
        deployment.save(s.deployment_file)

    def _spawn(self, member: Member) -> Member:
        out = open(member.log, "ab")  # noqa: SIM115 - the child keeps its own copy
        try:
            member.process = subprocess.Popen(
                member.command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env(member.name),
                process_group=self._pgid or 0,
                preexec_fn=die_with_parent,
            )
        finally:
            out.close()
        if self._pgid is None:
            self._pgid = member.process.pid
        self.members[member.name] = member
        return member

    def _start_indexer(self, name: str) -> Member:
        cmd = [sys.executable, "-m", "fundflow.cli.index", "index"]
        return self._spawn(Member(name, cmd, self.dir / f"{name}.log"))

    def _start_replica(self, name: str) -> Member:
        port = free_port()
        cmd = [sys.executable, "-m", "fundflow", "serve", "--port", str(port)]
        return self._spawn(Member(name, cmd, self.dir / f"{name}.log", port=port))

    def _start_haproxy(self, binary: str) -> None:
        replicas = [(n, m.port) for n, m in self.members.items() if n.startswith("api-") and m.port]
        config = self.dir / "haproxy.cfg"
        config.write_text(haproxy_config(self.lb_port or 0, replicas), encoding="utf-8")  # type: ignore[arg-type]
        check = subprocess.run([binary, "-c", "-q", "-f", str(config)], capture_output=True, text=True)
        if check.returncode != 0:
            raise FundflowError(f"HAProxy refused {config}: {check.stderr.strip()}", hint="see the file")
        self._spawn(Member("haproxy", [binary, "-db", "-f", str(config)], self.dir / "haproxy.log"))
        self.wait_for(lambda: self._answers(self.url), 20, f"HAProxy on {self.url}")

    def onboard(self) -> tuple[dict[str, str], dict[str, str]]:
        """Register the demo cast on chain (operator) with an API token each: (tokens, addresses)."""
        from eth_account import Account

        from fundflow.compose import chain_client
        from fundflow.demo import onboard_demo
        from ledger.chain.deploy import Deployment, connect
        from ledger.chain.keystore import Keystore
        from ledger.chain.participants import Directory

        s = self.child_settings()
        assert s.operator_key is not None
        ledger = connect(chain_client(s), Deployment.load(s.deployment_file))
        keystore = Keystore(s.keystore_dir, s.passphrase(), scrypt_n=s.keystore_scrypt_n)
        engine = create_db_engine(self.database_url)
        try:
            return onboard_demo(
                ledger,
                Account.from_key(s.operator_key.get_secret_value()),
                Directory(s.participants_file),
                keystore,
                engine,
            )
        finally:
            engine.dispose()

    def seed_demo(self) -> tuple[dict[str, str], dict[str, str], dict[str, object]]:
        """Onboard the demo cast and tell the demo story through the balancer: (tokens, addresses, loan)."""
        from fundflow.demo import seed_demo_via_api

        tokens, addresses = self.onboard()
        with httpx.Client(base_url=self.url, timeout=60) as http:
            loan = seed_demo_via_api(http, tokens, addresses)
        return tokens, addresses, loan

    @property
    def database(self) -> str | None:
        """The name of the database the cluster created (dropped by `stop`)."""
        return self._database

    # ------------------------------------------------------------------------------------------ watch

    @staticmethod
    def _answers(base: str) -> bool:
        try:
            return httpx.get(f"{base}/v1/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _wait_healthy(self, member: Member) -> None:
        base = f"http://127.0.0.1:{member.port}"
        self.wait_for(lambda: self._answers(base), 60, f"{member.name} to answer")

    def wait_for(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.1)
        raise FundflowError(f"timed out waiting for {what}", hint=f"see the logs in {self.work_dir}")

    def leader(self) -> str | None:
        """The indexer holding the advisory lock, by the application_name its connection carries."""
        engine = create_db_engine(self.database_url)
        try:
            with engine.connect() as conn:
                row = conn.execute(
                    sa.text(
                        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                        "WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()"
                    )
                ).first()
        finally:
            engine.dispose()
        return None if row is None else str(row[0])

    def pids(self) -> list[int]:
        """Every process of the cluster still running (members, the chain node and their children)."""
        out = [m.pid for m in self.members.values() if m.running]
        if self.chain is not None and self.chain._process is not None:
            out.append(self.chain._process.pid)
        return out

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        member = self.members[name]
        if member.running:
            os.kill(member.pid, sig)
            assert member.process is not None
            member.process.wait(timeout=10)

    # ------------------------------------------------------------------------------------------ stop

    def stop(self) -> None:
        """Stop everything: the balancer first (no new requests), then replicas and indexers, the chain, and
        drop the cluster's database."""
        members = self.members.values()
        order = sorted(members, key=lambda m: (m.name != "haproxy", m.name.startswith("indexer")))
        for m in order:
            if m.running:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(m.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for m in order:
            if m.process is None:
                continue
            try:
                m.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                m.process.kill()
                m.process.wait(timeout=5)
        if self._pgid is not None:  # anything a member started (the decoding worker) goes with the group
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._pgid, signal.SIGKILL)
        if self.chain is not None:
            self.chain.stop()
        if self._database is not None:
            # Bounded: a clean-up that waits on a busy server must not keep Ctrl-C from returning.
            url = sa.make_url(self.server_url)
            admin = sa.create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
            try:
                with admin.connect() as conn:
                    conn.execute(sa.text("SET lock_timeout = '10s'"))
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{self._database}" WITH (FORCE)'))
            except sa.exc.SQLAlchemyError:
                pass  # the server went away first: nothing left to drop
            finally:
                admin.dispose()
            self._database = None

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
