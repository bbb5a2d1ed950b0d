"""A throwaway PostgreSQL cluster for the tests: the server from the Debian
package (scripts/install-postgresql.sh), `initdb` into a temporary
directory, started on a free 127.0.0.1 port with its unix socket in that
directory, stopped and removed at the end. Each test asks it for a fresh,
empty database.

PostgreSQL refuses to run as root, and CI runs the tests as root: then the
server runs as the `postgres` system user the package creates, and owns the
temporary directory.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from testkit.exporter_io import free_port

PG_ROOT = Path("/usr/lib/postgresql")
SUPERUSER = "postgres"
START_SECONDS = 30.0


def server_bin() -> Path:
    """The bin directory of the newest installed server version."""
    versions = sorted(
        (p for p in PG_ROOT.glob("*/bin") if (p / "initdb").exists() and (p / "postgres").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not versions:
        raise RuntimeError(f"no PostgreSQL server under {PG_ROOT}: run scripts/install-postgresql.sh")
    return versions[-1]


class PostgresServer:
    """One cluster; `stop()` and `start()` again keep its data (an outage)."""

    def __init__(self) -> None:
        self.bin = server_bin()
        self.dir = Path(tempfile.mkdtemp(prefix="aae-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._names = itertools.count(1)
        self._user = pwd.getpwnam(SUPERUSER) if os.geteuid() == 0 else None
        if self._user is not None:
            os.chown(self.dir, self._user.pw_uid, self._user.pw_gid)
        self._run([str(self.bin / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8"])

    def _as_owner(self) -> dict[str, object]:
        """Popen arguments that run a server program as the cluster's owner."""
        if self._user is None:
            return {}
        return {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}

    def _run(self, argv: list[str]) -> None:
        done = subprocess.run(argv, cwd=self.dir, capture_output=True, check=False, **self._as_owner())  # type: ignore[call-overload]
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr.decode(errors='replace')}")

    @property
    def admin_url(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    def start(self) -> PostgresServer:
        log = (self.dir / "server.log").open("ab")
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.dir),
            "fsync": "off",  # a throwaway cluster: durability across an OS crash is not under test
            "max_connections": "200",
        }
        argv = [str(self.bin / "postgres"), "-D", str(self.data)]
        argv += [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]
        self.proc = subprocess.Popen(argv, cwd=self.dir, stdout=log, stderr=log, **self._as_owner())  # type: ignore[call-overload]
        log.close()
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                psycopg.connect(self.admin_url, connect_timeout=2).close()
                return self
            except psycopg.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"postgres did not start:\n{self.log()[-3000:]}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        """Fast shutdown (SIGINT): clients are disconnected, data kept."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        path = self.dir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def create_database(self) -> str:
        """A new empty database; its URL."""
        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.admin_url, autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{name}"
