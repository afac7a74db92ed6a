"""Real PostgreSQL and MariaDB servers for the database rotator tests.

Each is started from the Debian packages' binaries (scripts/install-databases
installs them) in a fresh directory, listening on 127.0.0.1 only, with TLS
from a CA made here, and stopped when the session ends. As root, PostgreSQL
runs as the `postgres` user the package creates (it refuses to run as root).
Each server runs in its own process group, so a kill reaches its workers.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import pymysql

from netutil import free_port, make_tls

ADMIN_PASSWORD = "admin-Passw0rd!"


def wait_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"database exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"database not listening on {port} after {timeout}s:\n{log.read_text(errors='replace')[-3000:]}")


class DatabaseServer:
    engine = ""
    port = 0
    dir: Path
    proc: subprocess.Popen | None = None
    # The signal for a quick clean shutdown.
    stop_signal = signal.SIGTERM

    def _signal_group(self, sig: int) -> None:
        # The server runs in its own session and process group, with
        # its worker processes: signal them all.
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self._signal_group(self.stop_signal)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        self._wait_port_closed()

    def kill(self) -> None:
        """SIGKILL to the server and its workers, as a crash."""
        if self.proc and self.proc.poll() is None:
            self._signal_group(signal.SIGKILL)
            self.proc.wait()
        self.proc = None
        self._wait_port_closed()

    def _wait_port_closed(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    time.sleep(0.05)
            except OSError:
                return
        raise RuntimeError(f"the {self.engine} server on port {self.port} did not stop")

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Postgres(DatabaseServer):
    engine = "postgres"
    # SIGTERM waits for every session to end; SIGINT is the fast shutdown.
    stop_signal = signal.SIGINT

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
        if not bins:
            raise RuntimeError("PostgreSQL is not installed: run scripts/install-databases")
        self.bin = Path(bins[-1])
        # Not under pytest's tmp dirs: those are 0700 to root, and the
        # server runs as `postgres`.
        self.dir = Path(tempfile.mkdtemp(prefix="tumbler-pg-"))
        self.dir.chmod(0o755)
        self.data = self.dir / "data"
        self.ca, cert, key = make_tls(self.dir)
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        pwfile = self.dir / "pw"
        pwfile.write_text(ADMIN_PASSWORD)
        if self.as_root:
            shutil.chown(self.dir, "postgres", "postgres")
            for p in (pwfile, cert, key):
                shutil.chown(p, "postgres", "postgres")
        self._run(
            [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=scram-sha-256",
             f"--pwfile={pwfile}", "-E", "UTF8", "--no-instructions"],
        )
        (self.data / "pg_hba.conf").write_text(
            "local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n"
        )
        self.log = self.dir / "postgres.log"
        self.cert, self.key = cert, key
        self.start()

    def _as_user(self) -> dict:
        # The server process itself (so signals reach it), as `postgres`.
        return {"user": "postgres", "group": "postgres"} if self.as_root else {}

    def _run(self, argv: list[str]) -> None:
        subprocess.run(argv, check=True, capture_output=True, cwd=self.dir, **self._as_user())

    def start(self) -> None:
        log = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [
                str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
                "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.dir}",
                "-c", "ssl=on", "-c", f"ssl_cert_file={self.cert}", "-c", f"ssl_key_file={self.key}",
                "-c", "max_connections=100", "-c", "fsync=off",
            ],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.dir, **self._as_user(),
        )
        wait_port(self.port, self.proc, self.log)
        # Listening precedes accepting logins by a moment.
        deadline = time.monotonic() + 30
        while True:
            try:
                self.connect("postgres", ADMIN_PASSWORD).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def connect(self, user: str, password: str, dbname: str = "postgres", **kw):
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user=user, password=password, dbname=dbname,
            connect_timeout=5, sslmode="disable", autocommit=True, **kw,
        )

    def admin(self):
        # Client-side binding: utility statements (CREATE ROLE ... PASSWORD %s) take no server parameters.
        return self.connect("postgres", ADMIN_PASSWORD, cursor_factory=psycopg.ClientCursor)

    def can_login(self, user: str, password: str, dbname: str = "postgres") -> bool:
        try:
            self.connect(user, password, dbname).close()
            return True
        except psycopg.OperationalError as e:
            assert "password authentication failed" in str(e), e
            return False

    def connections(self) -> int:
        with self.admin() as c:
            return c.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'").fetchone()[0]


class MariaDB(DatabaseServer):
    engine = "mariadb"

    def __init__(self) -> None:
        mariadbd = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        if not Path(mariadbd).exists():
            raise RuntimeError("MariaDB is not installed: run scripts/install-databases")
        self.mariadbd = mariadbd
        self.dir = Path(tempfile.mkdtemp(prefix="tumbler-mariadb-"))
        self.data = self.dir / "data"
        self.ca, self.cert, self.key = make_tls(self.dir)
        self.port = free_port()
        self.socket = self.dir / "mysqld.sock"
        self.log = self.dir / "mariadb.log"
        user = ["--user=root"] if os.geteuid() == 0 else []
        subprocess.run(
            ["mariadb-install-db", "--no-defaults", f"--datadir={self.data}", *user,
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            check=True, capture_output=True,
        )
        self.start()
        # root@localhost has no password yet; give it one, over the socket.
        with pymysql.connect(unix_socket=str(self.socket), user="root", password="") as c:
            with c.cursor() as cur:
                cur.execute("ALTER USER 'root'@'localhost' IDENTIFIED BY %s", (ADMIN_PASSWORD,))
                cur.execute("CREATE USER 'admin'@'%%' IDENTIFIED BY %s", (ADMIN_PASSWORD,))
                cur.execute("GRANT ALL PRIVILEGES ON *.* TO 'admin'@'%' WITH GRANT OPTION")
                cur.execute("CREATE DATABASE app")

    def start(self) -> None:
        log = open(self.log, "ab")
        user = ["--user=root"] if os.geteuid() == 0 else []
        self.proc = subprocess.Popen(
            [self.mariadbd, "--no-defaults", f"--datadir={self.data}", f"--socket={self.socket}",
             f"--port={self.port}", "--bind-address=127.0.0.1", *user, "--skip-name-resolve",
             f"--pid-file={self.dir / 'mariadbd.pid'}", f"--ssl-ca={self.ca}", f"--ssl-cert={self.cert}",
             f"--ssl-key={self.key}", "--innodb-buffer-pool-size=32M", "--max-connections=100"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_port(self.port, self.proc, self.log)

    def connect(self, user: str, password: str, **kw):
        return pymysql.connect(host="127.0.0.1", port=self.port, user=user, password=password, connect_timeout=5, **kw)

    def admin(self):
        return self.connect("admin", ADMIN_PASSWORD, autocommit=True)

    def can_login(self, user: str, password: str) -> bool:
        try:
            self.connect(user, password).close()
            return True
        except pymysql.err.OperationalError as e:
            assert e.args[0] == 1045, e  # Access denied
            return False
