"""The node becomes unreachable while `fundflow index` follows the chain: the indexer says so, waits with
backoff instead of exiting, and carries on from its checkpoint once the node is back, with nothing lost or
written twice. The outage is real: a TCP proxy between indexer and node is shut (connections refused), the
node itself keeps its chain and keeps mining."""

from __future__ import annotations

import contextlib
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import sqlalchemy as sa
from conftest import make_world
from indexer_support import Activity, assert_mirror_matches_chain, indexed_block, indexer_env

from ledger.chain.client import ChainClient
from ledger.chain.compiler import CompiledContract
from ledger.chain.localchain import free_port
from ledger.store.db import create_db_engine


class TcpProxy:
    """Forwards 127.0.0.1:`port` to the node; `close()` refuses and cuts every connection until `open()`."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def open(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def close(self) -> None:
        with self._lock:
            if self._listener is not None:
                # shutdown() wakes the thread blocked in accept(); close() alone would not on Linux.
                with contextlib.suppress(OSError):
                    self._listener.shutdown(socket.SHUT_RDWR)
                self._listener.close()
                self._listener = None
            for s in self._sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                if self._listener is not listener:  # closed meanwhile
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


def _wait_for(engine: sa.Engine, block: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while indexed_block(engine) < block:
        assert process.poll() is None, f"the indexer exited: {log.read_text()}"
        assert time.monotonic() < deadline, f"the indexer did not reach block {block}: {log.read_text()}"
        time.sleep(0.05)


def test_indexer_waits_out_an_unreachable_node_and_resumes_exactly(
    db_url: str, private_client: ChainClient, compiled: CompiledContract, tmp_path: Path
) -> None:
    world = make_world(private_client, compiled)
    world.deployment.save(tmp_path / "deployment.json")
    node_port = int(private_client.rpc_url.rsplit(":", 1)[1])
    proxy = TcpProxy(node_port).open()
    env = indexer_env(db_url, proxy.url, tmp_path, FUNDFLOW_POLL_INTERVAL="0.05")
    log_path = tmp_path / "indexer.log"
    engine = create_db_engine(db_url)
    activity = Activity(world, random.Random(5))
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "fundflow.cli.index", "index"],
            env=env,
            stdout=log,
            stderr=log,
            cwd=tmp_path,
        )
        try:
            activity.run(8)
            _wait_for(engine, private_client.block_number(), process, log_path)

            proxy.close()  # the node is now unreachable for the indexer; the chain goes on without it
            before = indexed_block(engine)
            activity.run(10)
            time.sleep(3)  # several failed attempts with backoff
            assert process.poll() is None, f"the indexer gave up: {log_path.read_text()}"
            assert indexed_block(engine) == before  # nothing indexed while away, nothing half-written

            proxy.open()
            _wait_for(engine, private_client.block_number(), process, log_path)
            activity.run(3)  # and it follows the tip again
            _wait_for(engine, private_client.block_number(), process, log_path)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(20)
            proxy.close()
    output = log_path.read_text()
    assert "waiting:" in output and "cannot reach the chain node" in output, output
    assert "reachable again" in output, output
    assert "Traceback" not in output, output
    at = assert_mirror_matches_chain(engine, world.ledger, world.deployment)
    assert at == private_client.block_number()
    with engine.connect() as conn:
        numbers = [r[0] for r in conn.execute(sa.text("SELECT number FROM blocks ORDER BY number"))]
    assert numbers == list(range(world.deployment.block_number, at + 1))  # no gap, no duplicate
    engine.dispose()
