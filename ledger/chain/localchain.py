"""Start and stop a local chain node (Hardhat by default, anvil as the second implementation).

Used by `fundflow chain`, `fundflow up` and the test suite. The node runs in its own process group so
stopping it never leaves a stray child behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from ledger.chain.client import ChainClient
from ledger.errors import ChainError

__all__ = ["LocalChain", "die_with_parent", "free_port", "project_root"]


def project_root() -> Path:
    return Path(__file__).resolve().parents[2]


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: have the kernel SIGKILL this (child) process when the thread that started it dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalChain:
    """A node process on 127.0.0.1:`port`. Use as a context manager or call start()/stop()."""

    def __init__(
        self,
        port: int | None = None,
        *,
        kind: str = "hardhat",
        log_path: Path | None = None,
        startup_timeout: float = 60.0,
        die_with_parent: bool = False,
    ) -> None:
        if kind not in ("hardhat", "anvil"):
            raise ChainError(f"unknown local chain kind {kind!r}", hint="use 'hardhat' or 'anvil'")
        self.port = port or free_port()
        self.kind = kind
        self.log_path = log_path
        self.startup_timeout = startup_timeout
        self.die_with_parent = die_with_parent  # the kernel kills the node if its starter dies (cluster)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        bin_dir = project_root() / "node_modules" / ".bin"
        if self.kind == "hardhat":
            return [str(bin_dir / "hardhat"), "node", "--hostname", "127.0.0.1", "--port", str(self.port)]
        # anvil: free gas like the Hardhat config, so fresh participant keys can send unfunded.
        return [
            str(bin_dir / "anvil"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--block-base-fee-per-gas",
            "0",
            "--gas-price",
            "0",
            "--silent",
        ]

    def start(self) -> LocalChain:
        cmd = self.command()
        if not Path(cmd[0]).exists():
            raise ChainError(
                f"{self.kind} is not installed ({cmd[0]} is missing)",
                hint="run `npm ci` in the project root (make setup does it)",
            )
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", self.port)) == 0:
                raise ChainError(
                    f"port {self.port} on 127.0.0.1 is already in use",
                    hint="stop what is listening there or pick another port (FUNDFLOW_CHAIN_PORT)",
                )
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self._process = subprocess.Popen(
                cmd,
                cwd=project_root(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent if self.die_with_parent else None,
            )
        finally:
            # The child has its own copy of the descriptor; keeping ours open leaks it (ResourceWarning).
            if not isinstance(out, int):
                out.close()
        try:
            self._wait_until_ready()
        except BaseException:
            # Ctrl-C or a failure while starting must not leave a node running in the background.
            self.stop()
            raise
        return self

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        client = ChainClient(self.url, request_timeout=2.0)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ChainError(
                    f"{self.kind} node exited with code {self._process.returncode} while starting",
                    hint=f"see {self.log_path}" if self.log_path else "run it by hand to see why",
                )
            if client.is_reachable():
                return
            time.sleep(0.1)
        raise ChainError(f"{self.kind} node did not answer within {self.startup_timeout:.0f} s", hint="retry")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crash would."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def wait(self) -> int:
        """Block until the node exits (for `fundflow chain`)."""
        if self._process is None:
            return 0
        return self._process.wait()

    def __enter__(self) -> LocalChain:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
