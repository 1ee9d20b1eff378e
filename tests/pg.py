"""A throwaway PostgreSQL server for the team-store tests.

``initdb`` into a temporary folder, then the server on 127.0.0.1 at a free port, with
password login for the user ``stoker``. PostgreSQL refuses to run as root, so under
root it runs as the ``postgres`` system user (via ``runuser``) in a folder that user
owns. :meth:`PgServer.stop` and :meth:`PgServer.start` let fault tests take the server
away mid-run and bring it back on the same port with the same data.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

BIN = Path("/usr/lib/postgresql/15/bin")
USER = "stoker"
PASSWORD = "pg-s3cret-pw"
_PG_CTL_TIMEOUT_S = 60


def available() -> str | None:
    """Why no server can be started here, or None if one can."""
    if not (BIN / "initdb").exists():
        return f"PostgreSQL 15 is not installed ({BIN}); run `make sysdeps`"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run the server"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """One PostgreSQL cluster in a temporary folder; see the module docstring."""

    def __init__(self, *, durable: bool = False) -> None:
        # Tests run without fsync (a crash of the machine loses nothing they
        # need); benchmarks pass durable=True to measure the server as deployed.
        self.durable = durable
        self.root = Path(tempfile.mkdtemp(prefix="stoker-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._as: list[str] = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self._as:
            os.chown(pwfile, pwd.getpwnam("postgres").pw_uid, -1)
        self._run(
            str(BIN / "initdb"),
            "-D",
            str(self.data),
            "-U",
            USER,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "-E",
            "UTF8",
            "--no-sync",
        )
        self.running = False

    def _run(self, *argv: str) -> None:
        proc = subprocess.run(
            [*self._as, *argv],
            capture_output=True,
            text=True,
            timeout=_PG_CTL_TIMEOUT_S,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {proc.stdout}\n{proc.stderr}")

    def start(self) -> None:
        opts = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c max_connections=200 "
            # Its shared memory in the data folder, not /dev/shm, where the
            # loader's leak tests look for segments left behind.
            "-c dynamic_shared_memory_type=mmap"
        )
        if not self.durable:
            opts += " -c fsync=off -c full_page_writes=off"
        self._run(
            str(BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            opts,
            "-l",
            str(self.root / "log"),
            "-w",
            "-t",
            str(_PG_CTL_TIMEOUT_S),
            "start",
        )
        self.running = True

    def stop(self) -> None:
        if self.running:
            self._run(
                str(BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                "immediate",
                "-w",
                "stop",
            )
            self.running = False

    def url(self, db: str = "postgres", password: str = PASSWORD) -> str:
        return f"postgresql://{USER}:{password}@127.0.0.1:{self.port}/{db}"

    def new_database(self) -> str:
        """A fresh, empty database; returns its URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def destroy(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
