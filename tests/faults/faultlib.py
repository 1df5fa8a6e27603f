"""Shared harness of the fault tests (docs/reliability.md): a TLS fleetca-server on a private
PostgreSQL cluster, a real mosquitto with the fleetca_auth.so plugin following it, the load
driver fault_load (many concurrent gRPC clients retrying with the same request id), and the
checks made after every fault.

Reuses the end-to-end harness (tests/e2e): FLEETCA_TEST_DATABASE_URL, FLEETCA_SERVER,
FLEETCA_BUF, FLEETCA_PLUGIN as there, plus FLEETCA_FAULT_LOAD (the driver; default
build/tests/faults/fault_load).
"""

import base64
import glob
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))

import fleetca_e2e  # noqa: E402
from fleetca_e2e import (REPO, SERVER, TestDatabase, _die_with_parent, log,  # noqa: E402,F401
                         pg_bindir, psql)
import test_plugin  # noqa: E402
from test_issuance import write  # noqa: E402

FAULT_LOAD = os.environ.get("FLEETCA_FAULT_LOAD") or os.path.join(
    os.path.dirname(os.path.dirname(SERVER)), "tests", "faults", "fault_load")
AUDIT = "fleetca.v1.AuditService"
REVOCATION = "fleetca.v1.RevocationService"
BROKERS = "fleetca.v1.BrokerSyncService"

# Every server of the fault tests: no issuance rate limit in the way of the load (one admin
# identity makes every call), and the database timeouts of test_pg_restart.
SERVER_ARGS = ["--issuance_rate_limit=1000000", "--issuance_burst=1000000",
               "--db_connect_timeout=3s", "--db_acquire_timeout=5s"]

CLIENTS = int(os.environ.get("FLEETCA_FAULT_CLIENTS", "16"))
REVOKERS = int(os.environ.get("FLEETCA_FAULT_REVOKERS", "2"))


def serial_int(text):
    """A serial as the API, the database (hex) or openssl print it -> int."""
    return int(text.replace(":", ""), 16)


def pem_to_der(pem):
    body = re.search(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", pem, re.S)
    return base64.b64decode("".join(body.group(1).split()))


def read_jsonl(path):
    """The complete lines of a JSONL file (a line being written is left out)."""
    out = []
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            if not line.endswith("\n"):
                break
            out.append(json.loads(line))
    return out


def http_get(port, path, timeout=10):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError as e:
        return None, str(e).encode()


def crl_text(der, cafile=None):
    """`openssl crl -text` of a DER CRL: (text, signature verified)."""
    cmd = ["openssl", "crl", "-inform", "DER", "-noout", "-text"]
    if cafile:
        cmd += ["-CAfile", cafile]
    r = subprocess.run(cmd, input=der, capture_output=True, timeout=60)
    text = r.stdout.decode() + r.stderr.decode()
    return text, (r.returncode == 0 and "verify OK" in text)


def crl_serials(text):
    return {serial_int(s) for s in re.findall(r"Serial Number: ([0-9A-Fa-f]+)", text)}


def crl_number(text):
    m = re.search(r"X509v3 CRL Number:\s*\n\s*([0-9A-Fa-f]+)", text)
    return int(m.group(1)) if m else None


def crl_entries(text):
    """{serial: (revocation date, reason)} of `openssl crl -text`."""
    out = {}
    for block in re.split(r"\n\s*Serial Number: ", text)[1:]:
        serial, _, rest = block.partition("\n")
        date = re.search(r"Revocation Date: (.*)", rest)
        reason = re.search(r"CRL Reason Code:\s*\n\s*(.*)", rest)
        out[serial_int(serial.strip())] = (date.group(1).strip() if date else None,
                                           reason.group(1).strip() if reason else None)
    return out


class Load:
    """fault_load running against one address, its records in a folder."""

    def __init__(self, port, tls, folder, clients=CLIENTS, revokers=REVOKERS, extra=()):
        if not os.access(FAULT_LOAD, os.X_OK):
            raise AssertionError(f"fault_load not found at {FAULT_LOAD} (FLEETCA_FAULT_LOAD): "
                                 "build the target fault_load")
        self.dir = folder
        os.makedirs(folder, exist_ok=True)
        self.stop_file = os.path.join(folder, "stop")
        self.cmd = [FAULT_LOAD, f"--target=127.0.0.1:{port}", f"--cacert={tls['cacert']}",
                    f"--credential={tls['cert']}", f"--clients={clients}",
                    f"--revokers={revokers}", f"--out_dir={folder}",
                    f"--stop_file={self.stop_file}", "--max_seconds=600", *extra]
        self._out = open(os.path.join(folder, "fault_load.out"), "w")
        self.proc = subprocess.Popen(self.cmd, stdout=self._out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        self.started = time.time()
        self.summary = None

    def certificates(self):
        return read_jsonl(os.path.join(self.dir, "certificates.jsonl"))

    def revocations(self):
        return read_jsonl(os.path.join(self.dir, "revocations.jsonl"))

    def failures(self):
        return read_jsonl(os.path.join(self.dir, "failures.jsonl"))

    def replays(self):
        return read_jsonl(os.path.join(self.dir, "replays.jsonl"))

    def output(self):
        with open(os.path.join(self.dir, "fault_load.out")) as f:
            return f.read()

    def wait_for(self, what, predicate, timeout):
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.proc.poll() is not None:
                raise AssertionError(f"fault_load exited ({self.proc.returncode}) while waiting "
                                     f"for {what}:\n{self.output()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout}s:\n{self.output()[-3000:]}")
            time.sleep(0.2)

    def wait_certificates(self, n, timeout=120, after=0.0):
        """Until n certificates were received whose reply came after wall time `after`."""
        self.wait_for(f"{n} certificates received after {after:.1f}",
                      lambda: sum(1 for c in self.certificates() if c["t_ok"] > after) >= n,
                      timeout)

    def wait_revocations(self, n, timeout=120, after=0.0):
        self.wait_for(f"{n} revocations acknowledged after {after:.1f}",
                      lambda: sum(1 for r in self.revocations() if r["t_ok"] > after) >= n,
                      timeout)

    def stop(self, timeout=300):
        """Stops the load (each client finishes its request), waits for the replay pass;
        returns the summary."""
        write(self.stop_file, "")
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"fault_load still running {timeout}s after the stop:\n"
                                 + self.output()[-3000:])
        self._out.close()
        with open(os.path.join(self.dir, "summary.json")) as f:
            self.summary = json.load(f)
        return self.summary

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self._out.closed:
            self._out.close()


class FaultTestCase(test_plugin.PluginTestCase):
    """The plugin tests' world (a TLS fleetca, a broker identity, mosquitto with the plugin),
    on a PostgreSQL cluster of the test's own so that it can be stopped and refused."""

    def setUp(self):
        super().setUp()
        self.cluster = self.new_cluster("faults")
        self.figures = {}

    def new_database(self, label=None):
        db = TestDatabase(label or "faults", server_url=self.cluster.url)
        self.resources.append(db)
        return db

    def serve_tls(self, label=None, args=()):
        return super().serve_tls(label, args=[*SERVER_ARGS, *args])

    def restart_server(self, port):
        """A new server on the same database, TLS files and port."""
        self.server = self.start_server(self.db.url, tls=self.admin.tls,
                                        listen=f"127.0.0.1:{port}",
                                        args=[f"--tls_dir={self.tmpdir}", *SERVER_ARGS])
        self.admin = self.server.wait_ready()
        return self.admin

    def start_load(self, name="load", **kwargs):
        load = Load(self.server.port, self.admin.tls, os.path.join(self.tmpdir, name), **kwargs)
        self.addCleanup(load.close)
        return load

    # -- PostgreSQL faults on the private cluster -------------------------------------

    def _as_pg_user(self, cmd):
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", os.environ.get("PG_OS_USER", "fleetca"), "--", *cmd]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed: {r.stdout}{r.stderr}")
        return r.stdout

    def socket_psql(self, sql):
        """SQL over the cluster's Unix socket (pg_hba's `local` line: never refused)."""
        return self._as_pg_user([os.path.join(pg_bindir(), "psql"), "-X", "-q", "-tA",
                                  "-h", os.path.join(self.cluster.dir, "run"),
                                  "-p", str(self.cluster.port), "-U", "fleetca", "-d", "postgres",
                                  "-v", "ON_ERROR_STOP=1", "-c", sql])

    def refuse_tcp(self, refuse):
        """pg_hba.conf rejects (or accepts again) every TCP connection; reloaded. Refusing
        also ends every backend of the fleetca database (what a failover or a network cut
        does to the pool)."""
        hba = os.path.join(self.cluster.dir, "data", "pg_hba.conf")
        marker = "# fault test: refuse\n"
        with open(hba) as f:
            text = f.read().replace(marker + "host all all 127.0.0.1/32 reject\n"
                                    "host all all ::1/128 reject\n", "")
        if refuse:
            text = (marker + "host all all 127.0.0.1/32 reject\nhost all all ::1/128 reject\n"
                    + text)
        with open(hba, "w") as f:
            f.write(text)
        self._as_pg_user([os.path.join(pg_bindir(), "pg_ctl"), "-D",
                          os.path.join(self.cluster.dir, "data"), "reload"])
        time.sleep(0.3)  # the postmaster re-reads pg_hba.conf on SIGHUP, asynchronously
        if refuse:
            ended = self.socket_psql(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                f"WHERE datname = '{self.db.name}' AND pid <> pg_backend_pid()")
            return int(ended.strip() or 0)
        return 0

    def tcp_refused(self):
        r = subprocess.run([os.path.join(pg_bindir(), "psql"), "-X", "-tA", "-d", self.db.url,
                            "-c", "SELECT 1"], capture_output=True, text=True, timeout=60)
        return r.returncode != 0 and "reject" in r.stderr, r.stderr.strip()

    # -- the checks after a fault ------------------------------------------------------

    def wait_serving(self, timeout=120):
        deadline = time.monotonic() + timeout
        while True:
            r = self.admin.health()
            if r.code == "OK" and r.body.get("status") == "SERVING":
                return
            self.assertLess(time.monotonic(), deadline, f"not SERVING after {timeout}s: {r!r}")
            time.sleep(0.2)

    def recovery_figures(self, load, fault_start, fault_end):
        """Seconds from the end of the fault to the first certificate and revocation whose
        reply came after it; the longest gap between replies around the fault."""
        certs = sorted(c["t_ok"] for c in load.certificates())
        revs = sorted(r["t_ok"] for r in load.revocations())
        first_cert = next((t for t in certs if t > fault_end), None)
        first_rev = next((t for t in revs if t > fault_end), None)
        last_before = max((t for t in certs if t < fault_start), default=None)
        return {
            "fault_seconds": round(fault_end - fault_start, 1),
            "first_certificate_after_fault_end_s": round(first_cert - fault_end, 2)
            if first_cert else None,
            "first_revocation_after_fault_end_s": round(first_rev - fault_end, 2)
            if first_rev else None,
            "issuance_gap_s": round(first_cert - last_before, 2)
            if first_cert and last_before else None,
        }

    def check_everything(self, load, summary, fault_end):
        """The issue's list, after the load stopped: every certificate received is in the
        database (same DER) and verifies; no serial twice; each request id one certificate,
        retries and replays the same; no request lost; every acknowledged revocation is
        stored, in a CRL newer than the fault, in the sync stream and in the plugin."""
        certs = load.certificates()
        revs = load.revocations()
        self.assertGreater(len(certs), 0)
        # 1. The database: each received certificate's row, same serial, DER, fingerprint;
        #    and no certificate of the load's request ids that nobody received.
        rows = self.db.query(
            "SELECT request_id, encode(serial, 'hex'), encode(fingerprint_sha256, 'hex'), "
            "encode(der, 'hex'), status FROM certificates WHERE kind = 'device' "
            "AND request_id IS NOT NULL")
        stored = {}
        for line in rows.split("\n") if rows else []:
            rid, serial, fp, der_hex, status = line.split("|")
            stored.setdefault(rid, []).append((serial_int(serial), fp, der_hex, status))
        ids = [c["request_id"] for c in certs]
        missing, different = [], []
        for c in certs:
            row = stored.get(c["request_id"])
            if not row:
                missing.append(c["request_id"])
                continue
            self.assertEqual(len(row), 1)
            serial, fp, der_hex, _ = row[0]
            der = pem_to_der(c["pem"])
            if (serial != serial_int(c["serial"]) or bytes.fromhex(der_hex) != der
                    or fp != hashlib.sha256(der).hexdigest()
                    or fp != c["fingerprint"].replace(":", "").lower()):
                different.append(c["request_id"])
        self.assertEqual(missing, [], f"{len(missing)} certificates received by clients are "
                         "not in the database")
        self.assertEqual(different, [], "certificates received differ from the stored ones")
        load_ids = {rid for rid in stored if rid.startswith(load_prefix(certs))}
        self.assertEqual(load_ids - set(ids), set(),
                         "certificates stored for the load's requests that no client received")

        # 2. No serial twice, no request id twice among what clients received.
        serials = [serial_int(c["serial"]) for c in certs]
        self.assertEqual(len(set(serials)), len(serials), "a serial was received twice")
        ids = [c["request_id"] for c in certs]
        self.assertEqual(len(set(ids)), len(ids), "a request id was answered twice")

        # 3. The driver's own view: nothing given up or refused, every replay identical.
        self.assertEqual(load.failures(), [], "requests that failed for good")
        self.assertEqual(summary["given_up"], 0, summary)
        self.assertEqual(summary["refused"], 0, summary)
        replays = load.replays()
        self.assertEqual(len(replays), len(certs), "every received request replayed once")
        bad = [r for r in replays if not r["same"]]
        self.assertEqual(bad, [], "a request id sent again returned another certificate")
        self.assertEqual(summary["replay_mismatches"], 0, summary)

        # 4. Every received certificate verifies against the chain (openssl verify).
        self.verify_all(certs)

        # 5. Every acknowledged revocation is stored.
        revoked = {serial_int(r["serial"]) for r in revs}
        self.assertEqual(len(revoked), len(revs), "a serial acknowledged as revoked twice")
        rows = self.db.query("SELECT encode(serial, 'hex') FROM revocations")
        in_db = {serial_int(s) for s in rows.split()} if rows else set()
        self.assertEqual(revoked - in_db, set(), "acknowledged revocations lost")

        # 6. The CRL (HTTP, as certificates name it): newer than the fault, signed by the
        #    devices CA, listing every acknowledged revocation.
        self.check_crl(revoked, fault_end)

        # 7. The sync stream and the plugin in the broker.
        self.check_stream(certs, revoked)
        self.check_plugin(certs, revs, fault_end)

        # 8. The audit chain is intact.
        body = self.ok(self.admin.call("VerifyAuditChain", {}, service=AUDIT))
        self.assertTrue(body["intact"], body)

    def verify_all(self, certs):
        folder = os.path.join(self.tmpdir, "verify")
        os.makedirs(folder, exist_ok=True)
        issuers = self.ok(self.admin.call("GetTrustBundle", {
            "scope": "TRUST_BUNDLE_SCOPE_CLIENT_AUTH"}, service="fleetca.v1.CertificateAuthorityService"))
        bundle = write(os.path.join(folder, "client-ca.pem"), issuers["bundlePem"])
        paths = []
        for i, c in enumerate(certs):
            paths.append(write(os.path.join(folder, f"c{i}.pem"), c["pem"]))
        failed = []
        for i in range(0, len(paths), 400):
            chunk = paths[i:i + 400]
            r = subprocess.run(["openssl", "verify", "-CAfile", bundle, "-purpose", "sslclient",
                                *chunk], capture_output=True, text=True, timeout=300)
            ok = {line[:-len(": OK")] for line in r.stdout.splitlines() if line.endswith(": OK")}
            failed += [p for p in chunk if p not in ok]
            if r.returncode != 0 and not failed:
                failed.append(r.stderr)
        self.assertEqual(failed, [], "certificates that do not verify")

    def devices_ca_file(self):
        body = self.ok(self.admin.call("GetIssuer", {"issuerId": "devices-1"},
                                       service="fleetca.v1.CertificateAuthorityService"))
        root = self.ok(self.admin.call("GetIssuer", {"issuerId": "root-1"},
                                       service="fleetca.v1.CertificateAuthorityService"))
        return write(os.path.join(self.tmpdir, "devices-chain.pem"),
                     body["issuer"]["certificatePem"] + root["issuer"]["certificatePem"])

    def check_crl(self, revoked, fault_end, timeout=90):
        cafile = self.devices_ca_file()
        deadline = time.monotonic() + timeout
        while True:
            status, der = http_get(self.server.http_port, "/crl/devices-1.crl")
            if status == 200:
                text, verified = crl_text(der, cafile)
                listed = crl_serials(text)
                m = re.search(r"Last Update: (.*)", text)
                last_update = time.mktime(time.strptime(m.group(1).strip(), "%b %d %H:%M:%S %Y GMT")) \
                    - time.timezone if m else 0
                if verified and revoked <= listed and last_update >= int(fault_end):
                    self.figures["crl_number"] = crl_number(text)
                    self.figures["crl_entries"] = len(listed)
                    return
            self.assertLess(time.monotonic(), deadline,
                            f"no CRL newer than the fault listing every acknowledged revocation "
                            f"within {timeout}s: status {status}; missing "
                            f"{sorted(revoked - (crl_serials(text) if status == 200 else set()))[:10]}")
            time.sleep(0.5)

    def check_stream(self, certs, revoked):
        """A Watch snapshot (buf curl) after recovery: every received certificate, the
        revoked ones REVOKED, the others ACTIVE."""
        stream = self.admin.stream("Watch", {"brokerId": "mqtt-1", "sinceRevision": "0",
                                             "heartbeatInterval": "5s",
                                             "objectTypes": ["SYNC_OBJECT_TYPE_CERTIFICATE"]},
                                   BROKERS)
        try:
            messages = stream.until(lambda m: "snapshotEnd" in m, timeout=180,
                                    what="the end of the snapshot")
        finally:
            stream.close()
        state = {}
        for m in messages:
            for c in m.get("changes", {}).get("changes", []):
                if "certificate" in c:
                    state[serial_int(c["certificate"]["serial"])] = c["certificate"]["status"]
        wrong = []
        for c in certs:
            s = serial_int(c["serial"])
            want = "CERTIFICATE_STATUS_REVOKED" if s in revoked else "CERTIFICATE_STATUS_ACTIVE"
            if state.get(s) != want:
                wrong.append((c["serial"], state.get(s), want))
        self.assertEqual(wrong, [], "the sync stream disagrees")

    def check_plugin(self, certs, revs, fault_end):
        """The plugin in mosquitto, whose Watch stream lived through the fault: acknowledged
        revocations from before, during and after the fault refuse their CONNECT
        (certificate_revoked in the broker's log); a certificate not revoked connects."""
        by_serial = {serial_int(c["serial"]): c for c in certs}
        ordered = sorted(revs, key=lambda r: r["t_ok"])
        around = [r for r in ordered if r["t_first"] <= fault_end + 5 and r["t_ok"] >= fault_end - 30]
        sample = ordered[:2] + around[-6:] + ordered[-3:]
        seen, picked = set(), []
        for r in sample:
            if r["serial"] not in seen:
                seen.add(r["serial"])
                picked.append(r)
        folder = os.path.join(self.tmpdir, "mqtt")
        os.makedirs(folder, exist_ok=True)

        def files(c):
            cert = write(os.path.join(folder, c["comm_id"] + ".crt"), c["pem"])
            key = write(os.path.join(folder, c["comm_id"] + ".key"), c["key"], mode=0o600)
            return cert, key

        for r in picked:
            c = by_serial[serial_int(r["serial"])]
            cert, key = files(c)
            self.assert_refused(cert, key, c["comm_id"], "certificate_revoked", timeout=60)
        revoked = {serial_int(r["serial"]) for r in revs}
        alive = [c for c in certs if serial_int(c["serial"]) not in revoked][-1]
        cert, key = files(alive)
        s = test_plugin.MqttSession(self.mosq.port, self.servers_ca, cert, key, alive["comm_id"])
        try:
            self.assertEqual(s.wait_connack(), 0, "a certificate not revoked is refused:\n"
                             + self.mosq.log_text()[-3000:])
        finally:
            s.close()
        self.figures["plugin_revocations_checked"] = len(picked)

    def report(self, name, load, summary):
        figures = dict(summary, **self.figures)
        figures.pop("failed_attempts", None)
        line = json.dumps({"scenario": name, **figures,
                           "failed_attempts": summary.get("failed_attempts")})
        print(f"\nFIGURES {line}", file=sys.stderr, flush=True)
        with open(os.path.join(os.environ.get("FLEETCA_E2E_TMP", fleetca_e2e.TMP_ROOT),
                               "fault-figures.jsonl"), "a") as f:
            f.write(line + "\n")


def load_prefix(certs):
    """The request-id prefix of one fault_load run (fl<pid>-c)."""
    return certs[0]["request_id"].split("-c", 1)[0] + "-c"


