"""A throwaway PostgreSQL server on loopback, for the tests and the benchmarks.

The store tests run against a real server, not a mock: `start_postgres()` runs the
Debian package's own `initdb` and `pg_ctl` on a fresh data directory in a temporary
folder, listening on 127.0.0.1 at a free port with trust authentication (loopback
only), and `PostgresServer.stop()` shuts it down and removes the folder.

PostgreSQL refuses to run as root, so under root (as in CI) every server command runs
as the `postgres` user that the Debian package creates, and the folder is theirs.
Used by `tests/runtime/conftest.py` (the `postgres_dsn` fixture) and
`benchmarks/journal_overhead.py`; `scripts/system-deps.sh` installs the package.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SERVER_USER = "postgres"


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries (or the user to run them as) are not installed."""


def find_bin_dir() -> Path:
    """The newest installed PostgreSQL's bin folder (Debian: /usr/lib/postgresql/N/bin)."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    on_path = shutil.which("initdb")
    if not found and on_path:
        found = [on_path]
    if not found:
        raise PostgresUnavailable(
            "PostgreSQL is not installed (no initdb under /usr/lib/postgresql/*/bin): "
            "run `bash scripts/system-deps.sh` (as `make test` does) or apt-get install postgresql"
        )

    def version(initdb: str) -> tuple[int, ...]:
        name = Path(initdb).parent.parent.name  # "15" in /usr/lib/postgresql/15/bin/initdb
        return tuple(int(x) for x in name.split(".") if x.isdigit())

    return Path(max(found, key=version)).parent


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    """A running server: `dsn` points at its database; `stop()` ends it and cleans up."""

    root: Path
    bin_dir: Path
    port: int
    dbname: str
    as_user: str | None

    @property
    def dsn(self) -> str:
        return f"postgresql://{SERVER_USER}@127.0.0.1:{self.port}/{self.dbname}"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a server binary, as the `postgres` user if we are root."""
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.as_user:
            command = ["runuser", "-u", self.as_user, "--", *command]
        return subprocess.run(
            command,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=120,
            check=check,
            stdin=subprocess.DEVNULL,
        )

    def log(self) -> str:
        try:
            return (self.root / "server.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server (fast shutdown: open connections are ended) and delete its files."""
        try:
            if (self.data / "postmaster.pid").exists():
                self.run("pg_ctl", "-D", str(self.data), "stop", "-m", "fast", "-w", check=False)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start_postgres(dbname: str = "pilothouse", *, durable: bool = False) -> PostgresServer:
    """Start a fresh server and create `dbname` on it.

    `durable=False` (tests) turns off fsync, which a throwaway server does not need;
    `durable=True` (benchmarks) keeps PostgreSQL's defaults, so commits cost what they
    cost for a user.
    """
    bin_dir = find_bin_dir()
    as_user: str | None = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam(SERVER_USER)
        except KeyError:
            raise PostgresUnavailable(
                f"running as root, and there is no {SERVER_USER!r} user to run PostgreSQL as "
                "(the Debian package creates it)"
            ) from None
        as_user = SERVER_USER
    # Not under pytest's tmp_path: its parents are private to root, and the server
    # user must be able to reach its own folder.
    root = Path(tempfile.mkdtemp(prefix="pilothouse-pg-"))
    if as_user:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    server = PostgresServer(root, bin_dir, 0, dbname, as_user)
    try:
        server.run(
            "initdb", "-D", str(server.data), "-U", SERVER_USER, "-A", "trust",
            "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
        )  # fmt: skip
        settings = [
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={root}",
            "-c max_connections=50",
        ]
        if not durable:
            settings += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        last_error = ""
        for _ in range(3):  # a free port can be taken between finding and binding it
            server.port = _free_port()
            started = server.run(
                "pg_ctl", "-D", str(server.data), "-l", str(root / "server.log"), "-w",
                "-t", "60", "-o", " ".join([*settings, f"-c port={server.port}"]), "start",
                check=False,
            )  # fmt: skip
            if started.returncode == 0:
                break
            last_error = started.stderr + server.log()
        else:
            raise RuntimeError(f"PostgreSQL did not start:\n{last_error}")
        created = server.run(
            "createdb", "-h", "127.0.0.1", "-p", str(server.port), "-U", SERVER_USER, dbname,
            check=False,
        )  # fmt: skip
        if created.returncode != 0:
            raise RuntimeError(f"createdb failed: {created.stderr}")
    except BaseException:
        server.stop()
        raise
    return server


@contextlib.contextmanager
def postgres_server(dbname: str = "pilothouse", *, durable: bool = False) -> Iterator[str]:
    """`start_postgres` as a context manager yielding the DSN; stops the server after."""
    server = start_postgres(dbname, durable=durable)
    try:
        yield server.dsn
    finally:
        server.stop()
