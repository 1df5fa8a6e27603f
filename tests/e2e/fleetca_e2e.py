"""Shared harness of the end-to-end tests: real fleetca-server processes, real PostgreSQL,
and buf curl (a gRPC client that learns the API through server reflection) as the client.

Environment (set by tests/e2e/CMakeLists.txt and scripts/test.sh):
  FLEETCA_TEST_DATABASE_URL  PostgreSQL server to make test databases in (required)
  FLEETCA_SERVER             the fleetca-server binary (default build/server/fleetca-server)
  FLEETCA_BUF                the buf binary (default tools/node_modules/.bin/buf)
  FLEETCA_SOURCE_DIR         the repository (default: found from this file)
  FLEETCA_E2E_TMP            scratch folder for logs and private clusters (default build/e2e-tmp)
"""

import concurrent.futures
import ctypes
import glob
import json
import os
import queue
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

REPO = os.environ.get("FLEETCA_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVER = os.environ.get("FLEETCA_SERVER") or os.path.join(REPO, "build", "server", "fleetca-server")
BUF = os.environ.get("FLEETCA_BUF") or os.path.join(REPO, "tools", "node_modules", ".bin", "buf")
TMP_ROOT = os.environ.get("FLEETCA_E2E_TMP") or os.path.join(REPO, "build", "e2e-tmp")
PG_SH = os.path.join(REPO, "scripts", "pg.sh")
PROTO_DIR = os.path.join(REPO, "proto")  # for calls that must not depend on reflection
REGISTRY = "fleetca.v1.DeviceRegistryService"

# Generous bounds for a shared 2-core machine: waits poll and return as soon as they can.
START_TIMEOUT = 90.0
STOP_TIMEOUT = 90.0
CALL_TIMEOUT = 120.0

CODES = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
         "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
         "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
         "UNAUTHENTICATED"]


def log(msg):
    print(f"[e2e {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def require_environment():
    """Fails (never skips) when the environment is not set up."""
    problems = []
    if not os.environ.get("FLEETCA_TEST_DATABASE_URL"):
        problems.append(
            "FLEETCA_TEST_DATABASE_URL is not set. Run the tests with scripts/test.sh, or start a "
            "test PostgreSQL with `scripts/pg.sh start .dev/pg-test 55433` and "
            "`export FLEETCA_TEST_DATABASE_URL=$(scripts/pg.sh url 55433)`")
    if not os.access(SERVER, os.X_OK):
        problems.append(f"fleetca-server not found at {SERVER} (FLEETCA_SERVER): build it first")
    if not os.access(BUF, os.X_OK):
        problems.append(f"buf not found at {BUF} (FLEETCA_BUF): run scripts/deps.sh")
    if not os.access(psql_path(), os.X_OK):
        problems.append(f"psql not found at {psql_path()}: run scripts/deps.sh")
    if problems:
        raise AssertionError("end-to-end tests cannot run:\n  " + "\n  ".join(problems))


def pg_bindir():
    if os.environ.get("PG_BINDIR"):
        return os.environ["PG_BINDIR"]
    dirs = glob.glob("/usr/lib/postgresql/*/bin")
    dirs.sort(key=lambda d: int(d.split("/")[-2]) if d.split("/")[-2].isdigit() else 0)
    return dirs[-1] if dirs else "/usr/bin"


def psql_path():
    return os.path.join(pg_bindir(), "psql")


def free_port():
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def url_with_db(url, dbname):
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + dbname))


def psql(url, sql, timeout=60.0):
    """Runs SQL with psql against url; returns stdout (unaligned, tuples only)."""
    r = subprocess.run([psql_path(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-tA", "-d", url, "-c", sql],
                       capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise AssertionError(f"psql failed ({r.returncode}) on {sql!r}: {r.stderr.strip()}")
    return r.stdout.strip()


def make_tmpdir(prefix):
    os.makedirs(TMP_ROOT, exist_ok=True)
    return tempfile.mkdtemp(prefix=prefix + "-", dir=TMP_ROOT)


def _die_with_parent():
    # If the test process dies (ctest timeout, Ctrl-C), the servers it started die too.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class TestDatabase:
    """A fresh database on the test PostgreSQL server, dropped by close()."""

    def __init__(self, label, server_url=None):
        self.server_url = server_url or os.environ["FLEETCA_TEST_DATABASE_URL"]
        self.name = f"e2e_{label}_{secrets.token_hex(4)}"
        self.admin_url = url_with_db(self.server_url, "postgres")
        psql(self.admin_url, f'CREATE DATABASE "{self.name}"')
        self.url = url_with_db(self.server_url, self.name)

    def query(self, sql):
        return psql(self.url, sql)

    def close(self):
        try:
            psql(self.admin_url, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        except Exception as e:  # a stopped private cluster, for instance
            log(f"could not drop {self.name}: {e}")


class PrivateCluster:
    """A PostgreSQL cluster of this test's own (scripts/pg.sh), to stop and start at will."""

    def __init__(self, label):
        self._sweep_orphans()
        self.dir = make_tmpdir("pg-" + label)
        with open(os.path.join(self.dir, "owner.pid"), "w") as f:
            f.write(str(os.getpid()))
        self.port = free_port()
        self.url = f"postgresql://fleetca@127.0.0.1:{self.port}/fleetca"  # made by pg.sh
        self.start()

    @staticmethod
    def _sweep_orphans():
        """Stops clusters left by test processes that were killed (a ctest timeout, say)."""
        for d in glob.glob(os.path.join(TMP_ROOT, "pg-*")):
            try:
                with open(os.path.join(d, "owner.pid")) as f:
                    pid = int(f.read().strip())
                os.kill(pid, 0)
                continue  # its test is still running
            except ProcessLookupError:
                pass
            except (OSError, ValueError):
                continue
            log(f"stopping an orphaned cluster in {d}")
            subprocess.run(["bash", PG_SH, "stop", d], capture_output=True, timeout=180,
                           stdin=subprocess.DEVNULL)
            shutil.rmtree(d, ignore_errors=True)

    def _pg_sh(self, *args):
        r = subprocess.run(["bash", PG_SH, *args], capture_output=True, text=True, timeout=180,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise AssertionError(f"pg.sh {' '.join(args)} failed: {r.stdout}{r.stderr}")

    def start(self):
        self._pg_sh("start", self.dir, str(self.port))

    def stop(self):
        self._pg_sh("stop", self.dir)

    def close(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class CallResult:
    def __init__(self, exit_code, stdout, stderr, seconds):
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr
        self.seconds = seconds
        self.body = None
        self.message = ""
        self.error = None
        if exit_code == 0:
            self.code = "OK"
            try:
                self.body = json.loads(stdout) if stdout.strip() else {}
            except json.JSONDecodeError:  # --list-services and the like print plain text
                self.body = None
        elif exit_code >= 8 and exit_code % 8 == 0 and exit_code // 8 < len(CODES):
            # buf curl: "the gRPC code, shifted three bits to the left"; details as JSON on stderr.
            self.code = CODES[exit_code // 8]
            try:
                self.error = json.loads(stderr)
                self.message = self.error.get("message", "")
                named = self.error.get("code", "").upper()
                if named and named != self.code:
                    raise AssertionError(f"buf curl exit code {exit_code} says {self.code} but "
                                         f"stderr says {named}: {stderr}")
            except json.JSONDecodeError:
                self.message = stderr.strip()
        else:
            self.code = f"CLIENT_ERROR({exit_code})"
            self.message = stderr.strip()

    def __repr__(self):
        return (f"<{self.code} in {self.seconds:.2f}s: "
                f"{self.message or (self.stdout[:300] if self.stdout else '')}>")


class Client:
    """buf curl against one server, through reflection."""

    def __init__(self, port, tls=None):
        """tls: None for plaintext, else a Credential (or a dict with cacert and, optionally,
        cert and key) to call https://localhost:port with."""
        self.port = port
        self.tls = tls
        if tls is None:
            self.base = f"http://127.0.0.1:{port}"
            self._conn = ["--http2-prior-knowledge"]
        else:
            self.base = f"https://localhost:{port}"
            self._conn = ["--cacert", tls["cacert"]]
            if tls.get("cert"):
                self._conn += ["--cert", tls["cert"], "--key", tls["key"]]

    def as_(self, tls):
        """The same server, called with other credentials."""
        return Client(self.port, tls)

    def _run(self, args, data=None, timeout=CALL_TIMEOUT):
        cmd = [BUF, "curl", "--protocol", "grpc", *self._conn, "--emit-defaults",
               "--connect-timeout", "10", "--timeout", f"{int(timeout)}s", *args]
        if data is not None:
            cmd += ["--data", "@-"]
        t0 = time.monotonic()
        r = subprocess.run(cmd, input=json.dumps(data) if data is not None else "",
                           capture_output=True, text=True, timeout=timeout + 30)
        return CallResult(r.returncode, r.stdout, r.stderr, time.monotonic() - t0)

    def call(self, method, request=None, timeout=CALL_TIMEOUT, service=REGISTRY, schema=None):
        args = []
        if schema:
            args += ["--schema", schema]
        args.append(f"{self.base}/{service}/{method}")
        return self._run(args, data=request if request is not None else {}, timeout=timeout)

    def stream(self, method, request, service):
        """A server-streaming call left running: a Stream of its messages."""
        cmd = [BUF, "curl", "--protocol", "grpc", *self._conn, "--emit-defaults",
               "--connect-timeout", "10", "--data", json.dumps(request),
               f"{self.base}/{service}/{method}"]
        return Stream(cmd)

    def health(self, service=""):
        return self.call("Check", {"service": service}, service="grpc.health.v1.Health", timeout=30)

    def list_services(self):
        return self._run(["--list-services", self.base], timeout=60)

    def list_methods(self):
        return self._run(["--list-methods", self.base], timeout=60)


class Stream:
    """A buf curl server-streaming call: its messages as they arrive (buf curl prints each as
    a JSON object), and its outcome once it ends."""

    def __init__(self, cmd):
        # Its own process group: the npm wrapper runs buf as a child, both killed on close.
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, preexec_fn=_die_with_parent,
                                      start_new_session=True)
        self._messages = queue.Queue()
        self._stderr = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        threading.Thread(target=lambda: self._stderr.append(self._proc.stderr.read()),
                         daemon=True).start()

    def _read(self):
        decoder = json.JSONDecoder()
        buf = ""
        for line in self._proc.stdout:
            buf += line
            while True:
                stripped = buf.lstrip()
                if not stripped:
                    buf = ""
                    break
                try:
                    obj, end = decoder.raw_decode(stripped)
                except json.JSONDecodeError:
                    break
                self._messages.put((time.monotonic(), obj))
                buf = stripped[end:]
        self._messages.put((time.monotonic(), None))

    def next(self, timeout=CALL_TIMEOUT):
        """The next message, or None once the stream ended; fails after timeout."""
        try:
            return self._messages.get(timeout=timeout)[1]
        except queue.Empty:
            raise AssertionError(f"no stream message within {timeout}s") from None

    def next_timed(self, timeout=CALL_TIMEOUT):
        """(monotonic arrival time, message)."""
        try:
            return self._messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no stream message within {timeout}s") from None

    def until(self, predicate, timeout=CALL_TIMEOUT, what="a stream message"):
        """Messages up to and including the first one predicate accepts."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            msg = self.next(max(0.1, deadline - time.monotonic()))
            if msg is None:
                raise AssertionError(f"the stream ended before {what}: {self.outcome()}; "
                                     f"seen {seen}")
            seen.append(msg)
            if predicate(msg):
                return seen
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout}s; seen {seen}")

    def outcome(self, timeout=CALL_TIMEOUT):
        """CallResult of the ended stream (its messages are not in it)."""
        code = self._proc.wait(timeout=timeout)
        self._reader.join(timeout)
        time.sleep(0.1)
        return CallResult(code, "", "".join(self._stderr), 0)

    def close(self):
        try:
            os.killpg(self._proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._proc.wait()
        self._reader.join(10)
        for f in (self._proc.stdout, self._proc.stderr):
            try:
                f.close()
            except (OSError, ValueError):  # the stderr reader may hold it a moment longer
                pass


_KEK = None


def test_kek():
    """A key-encryption key for this test process, made by the server's own gen-kek."""
    global _KEK
    if _KEK is None:
        out = subprocess.run([SERVER, "gen-kek", "--kek_id=e2e"], capture_output=True, text=True,
                             timeout=60, check=True)
        _KEK = out.stdout.strip()
    return _KEK


class Server:
    """One fleetca-server process, its stderr in a log file."""

    def __init__(self, database_url, tmpdir, name="server", listen="127.0.0.1:0", args=(),
                 command="serve", env=None, tls=None):
        """tls: None serves plaintext (--insecure_plaintext, the development mode) so that
        tests of other things need no credentials; else the dict (cacert, cert, key) its
        clients call with, by default, over TLS with client certificates."""
        self.log_path = os.path.join(tmpdir, f"{name}-{secrets.token_hex(3)}.log")
        self.name = name
        self.port = None
        self.tls = tls
        cmd = [SERVER, command, f"--database_url={database_url}", f"--listen={listen}",
               "--log_level=info", *args]
        if command == "serve" and tls is None and not any(
                a.startswith("--insecure_plaintext") for a in args):
            cmd.append("--insecure_plaintext")
        # Tests run side by side: the CRL/CA HTTP port is any free one (see http_port).
        if command == "serve" and not any(a.startswith("--http_listen") for a in args):
            cmd.append("--http_listen=127.0.0.1:0")
        self.http_port = None
        full_env = dict(os.environ)
        for k in ("FLEETCA_DATABASE_URL", "FLEETCA_LISTEN", "FLEETCA_LOG_LEVEL",
                  "FLEETCA_DB_MAX_CONNECTIONS", "FLEETCA_KEK_FILE", "FLEETCA_PREVIOUS_KEK_FILES"):
            full_env.pop(k, None)
        full_env["FLEETCA_KEK"] = test_kek()
        full_env.update(env or {})
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=full_env, cwd=tmpdir,
                                     preexec_fn=_die_with_parent)
        self.cmd = cmd

    @property
    def pid(self):
        return self.proc.pid

    def log_text(self):
        with open(self.log_path) as f:
            return f.read()

    def log_lines(self):
        """The JSON log lines (non-JSON lines are returned as {'raw': line})."""
        out = []
        for line in self.log_text().splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                out.append({"raw": line})
        return out

    def messages(self):
        return [l.get("msg") for l in self.log_lines()]

    def describe(self):
        return f"{self.name} (pid {self.pid}, log {self.log_path}):\n{self.log_text()[-4000:]}"

    def wait_ready(self, timeout=START_TIMEOUT):
        """Waits for the 'serving' log line; returns a Client for the server's port."""
        deadline = time.monotonic() + timeout
        while True:
            for l in self.log_lines():
                if l.get("msg") == "http serving":
                    self.http_port = int(l["port"])
                if l.get("msg") == "serving":
                    self.port = int(l["port"])
                    return Client(self.port, self.tls)
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode} before serving: "
                                     + self.describe())
            if time.monotonic() > deadline:
                raise AssertionError(f"server not serving after {timeout}s: " + self.describe())
            time.sleep(0.05)

    def wait_log(self, msg, timeout=START_TIMEOUT):
        deadline = time.monotonic() + timeout
        while msg not in self.messages():
            if time.monotonic() > deadline:
                raise AssertionError(f"no {msg!r} log line after {timeout}s: " + self.describe())
            time.sleep(0.05)

    def wait_exit(self, timeout=STOP_TIMEOUT):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"server still running {timeout}s later: " + self.describe())

    def terminate(self):
        self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, then the exit code."""
        self.terminate()
        return self.wait_exit(timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self._log.close()


class E2ETestCase(unittest.TestCase):
    """Base class: fresh databases and servers that are cleaned up whatever happens."""

    maxDiff = 4000

    @classmethod
    def setUpClass(cls):
        require_environment()

    def setUp(self):
        self.tmpdir = make_tmpdir(self.id().split(".")[-1])
        self.servers = []
        self.resources = []  # databases, clusters: closed after the servers, newest first
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        passed = self._outcome_ok()
        for s in self.servers:
            running = s.proc.poll() is None
            s.kill()
            if not passed:  # the server logs explain most failures
                print(f"--- {s.describe()}" + ("(was still running: killed)\n" if running else ""),
                      file=sys.stderr)
        for r in reversed(self.resources):
            r.close()
        if passed:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        else:
            log(f"kept {self.tmpdir}")

    def _outcome_ok(self):
        """Whether this test has passed so far (unittest records failures as they happen)."""
        result = getattr(getattr(self, "_outcome", None), "result", None)
        if result is None:
            return False
        return not any(t is self or getattr(t, "test_case", None) is self
                       for t, _ in result.failures + result.errors)

    def new_database(self, label=None):
        db = TestDatabase(label or self.id().split(".")[-1][:40].lower())
        self.resources.append(db)
        return db

    def new_cluster(self, label):
        cluster = PrivateCluster(label)
        self.resources.append(cluster)
        return cluster

    def start_server(self, database_url, **kwargs):
        s = Server(database_url, self.tmpdir, **kwargs)
        self.servers.append(s)
        return s

    def assertCode(self, result, code, context=""):
        if result.code != code:
            servers = "\n".join(s.describe() for s in self.servers[-2:])
            self.fail(f"{context}: expected {code}, got {result!r}\nstdout: {result.stdout[:2000]}"
                      f"\nstderr: {result.stderr[:2000]}\n{servers}")

    def ok(self, result, context=""):
        self.assertCode(result, "OK", context)
        return result.body


def parallel(fns, workers=8):
    """Runs the callables at once; returns their results in order."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as ex:
        return [f.result() for f in [ex.submit(fn) for fn in fns]]
