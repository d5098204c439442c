"""A throwaway PostgreSQL on 127.0.0.1 from Debian's `postgresql` binaries (the multi-node demo and the tests).

initdb + pg_ctl in a temporary directory, on a free port, with durability off (the data is thrown away).
initdb refuses root, so as root the server runs as `postgres` (or `nobody`) through `runuser`.
"""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

PG_BIN = Path(os.environ.get("TSUNAGU_PG_BIN", "/usr/lib/postgresql/15/bin"))
PORTS = range(55400, 55500)


def pg_bin() -> Path | None:
    """Where initdb lives: $TSUNAGU_PG_BIN, else the newest /usr/lib/postgresql/*/bin; None when missing."""
    if (PG_BIN / "initdb").exists():
        return PG_BIN
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
                   if p.parent.parent.name.isdigit() else 0)
    return found[-1].parent if found else None


@dataclass
class PgServer:
    host: str
    port: int
    user: str
    datadir: Path

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{dbname}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(host=self.host, port=self.port, user=self.user, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _free_port() -> int:
    for port in PORTS:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 55400-55499 for a throwaway PostgreSQL")


def _run_as() -> tuple[list[str], str | None]:
    """The command prefix that drops root, and the account it drops to (None: already unprivileged)."""
    if os.geteuid() != 0:
        return [], None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return ["runuser", "-u", name, "--"], name
    subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True)
    return ["runuser", "-u", "postgres", "--"], "postgres"


def server_options(port: int, base: Path, *, durable: bool = False) -> str:
    """The postgres command-line settings of a throwaway server.

    Throwaway data needs no durability, so commits do not wait for the WAL (fast tests). A test that crashes
    the server on purpose asks for `durable`: with `synchronous_commit=off` a commit the client was told had
    happened can vanish in the crash, which no production server is set to do, so such a test would see
    losses the product never causes. `fsync` stays off either way: the server process dies, the host does not,
    and what was written to the kernel survives.
    """
    sync = "on" if durable else "off"
    return (f"-p {port} -h 127.0.0.1 -k {base} -c fsync=off -c synchronous_commit={sync} "
            "-c full_page_writes=off -c max_connections=60 -c shared_buffers=32MB")


def start_server(base: Path, bin_dir: Path | None = None, *, durable: bool = False) -> PgServer:
    bin_dir = bin_dir or pg_bin() or PG_BIN
    prefix, account = _run_as()
    if account is not None:
        pw = pwd.getpwnam(account)
        os.chown(base, pw.pw_uid, pw.pw_gid)
    data = base / "data"
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    subprocess.run([*prefix, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                    "-E", "UTF8", "--no-sync", "--no-instructions"], check=True, capture_output=True, env=env,
                   cwd=base)
    last_err = ""
    for _try in range(5):
        port = _free_port()
        opts = server_options(port, base, durable=durable)
        res = subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(base / "log"),
                              "-o", opts, "-w", "-t", "30", "start"], capture_output=True, text=True, env=env,
                             cwd=base)
        if res.returncode == 0:
            return PgServer("127.0.0.1", port, "postgres", data)
        last_err = res.stderr + res.stdout
        time.sleep(0.2)  # a port race with another run: pick another
    log = (base / "log").read_text(errors="replace") if (base / "log").exists() else ""
    raise RuntimeError(f"PostgreSQL did not start: {last_err}\n{log[-2000:]}")


def stop_server(server: PgServer, bin_dir: Path | None = None) -> None:
    bin_dir = bin_dir or pg_bin() or PG_BIN
    prefix, _ = _run_as()
    subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(server.datadir), "-m", "immediate", "-w", "stop"],
                   capture_output=True, cwd=server.datadir.parent)


__all__ = ["PgServer", "pg_bin", "server_options", "start_server", "stop_server"]
