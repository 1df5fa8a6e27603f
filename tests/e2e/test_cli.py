"""The fleetca CLI (cli/, docs/cli.md), end to end: the real binary against a real server on
real PostgreSQL, over TLS with the admin credential `fleetca-server init` writes. The device
life cycle, certificates checked with the openssl CLI, a 10,000-row import interrupted for
real (SIGKILL, SIGINT) and resumed, identities, exit codes, the progress bar under a
pseudo-terminal, and the connection settings from flags, environment and config file.

Environment: FLEETCA_CLI (the fleetca binary; default build/cli/fleetca) besides the
harness's (fleetca_e2e.py).
"""

import json
import os
import pty
import re
import select
import signal
import stat
import subprocess
import time
import unittest

from fleetca_e2e import REPO, E2ETestCase, _die_with_parent, log
from test_issuance import Pki

CLI = os.environ.get("FLEETCA_CLI") or os.path.join(REPO, "build", "cli", "fleetca")

# Settings of the CLI that the caller's environment must not leak into a test.
CLI_ENV = ["FLEETCA_ADDRESS", "FLEETCA_CACERT", "FLEETCA_CERT", "FLEETCA_KEY",
           "FLEETCA_CREDENTIAL", "FLEETCA_CONFIG", "FLEETCA_OUTPUT", "FLEETCA_TIMEOUT",
           "FLEETCA_TLS_SERVER_NAME", "FLEETCA_INSECURE_PLAINTEXT"]

IMPORT_ROWS = 10000
BAD_EVERY = 1000  # every 1000th row has an invalid comm-ID


def read(path):
    with open(path) as f:
        return f.read()


def write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def openssl(*args, check=True):
    r = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)
    if check and r.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed: {r.stdout}{r.stderr}")
    return r


def result_lines(path):
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass  # a line torn by an interruption
    return out


def summary(stderr):
    """The numbers of the import's summary line."""
    m = re.search(r"import: (\d+) rows: (\d+) registered, (\d+) exists, (\d+) failed, "
                  r"(\d+) skipped", stderr)
    if not m:
        raise AssertionError(f"no summary line in {stderr!r}")
    return dict(zip(["rows", "registered", "exists", "failed", "skipped"],
                    (int(x) for x in m.groups())))


def import_csv(path, prefix, rows=IMPORT_ROWS):
    with open(path, "w") as f:
        f.write("comm_id,display_name,groups,attr.site,attr.lot\n")
        for i in range(rows):
            comm_id = f"bad/{prefix}{i}" if i % BAD_EVERY == BAD_EVERY - 1 else f"{prefix}{i:05d}"
            f.write(f'{comm_id},"Device {i}, {prefix}",line-{i % 3};all,site-{i % 7},{i // 100}\n')
    return path


class CliTestCase(E2ETestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not os.access(CLI, os.X_OK):
            raise AssertionError(f"the fleetca CLI not found at {CLI} (FLEETCA_CLI): build it")

    def serve(self):
        """A database initialised by `fleetca-server init` and a TLS server on it; sets
        self.address, self.admin_pem and self.cacert."""
        db = self.new_database()
        self.admin_pem = os.path.join(self.tmpdir, "admin.pem")
        init = self.start_server(db.url, command="init", name="init",
                                 args=[f"--admin_credential_file={self.admin_pem}"])
        self.assertEqual(init.wait_exit(), 0, init.describe())
        self.cacert = os.path.join(self.tmpdir, "ca.pem")
        tls = {"cacert": self.cacert, "cert": self.admin_pem, "key": self.admin_pem}
        self.server = self.start_server(db.url, tls=tls, args=[f"--tls_dir={self.tmpdir}/tls"])
        self.server.wait_ready()
        self.address = f"localhost:{self.server.port}"
        self.home = os.path.join(self.tmpdir, "home")
        os.makedirs(self.home, exist_ok=True)
        return db

    def env(self, credential=True, **extra):
        env = {k: v for k, v in os.environ.items() if k not in CLI_ENV}
        env["HOME"] = self.home  # no ~/.config/fleetca/config.toml but the test's own
        if credential:
            env.update(FLEETCA_ADDRESS=self.address, FLEETCA_CACERT=self.cacert,
                       FLEETCA_CREDENTIAL=self.admin_pem)
        env.update(extra)
        return env

    def cli(self, *args, env=None, expect=0, input=None, timeout=180):
        """Runs the CLI; checks its exit code (None: any); returns the CompletedProcess."""
        r = subprocess.run([CLI, *args], capture_output=True, text=True, timeout=timeout,
                           env=env if env is not None else self.env(), input=input,
                           cwd=self.tmpdir)
        if expect is not None and r.returncode != expect:
            self.fail(f"fleetca {' '.join(args)}: exit {r.returncode}, expected {expect}\n"
                      f"stdout: {r.stdout[-2000:]}\nstderr: {r.stderr[-2000:]}")
        return r

    def json(self, *args, **kwargs):
        return json.loads(self.cli(*args, "-o", "json", **kwargs).stdout)

    def assertError(self, r, exit_code, code):
        self.assertEqual(r.returncode, exit_code, f"stdout {r.stdout!r} stderr {r.stderr!r}")
        self.assertTrue(r.stderr.startswith(f"fleetca: {code}: "), r.stderr)
        self.assertEqual(r.stdout, "", "errors go to stderr only")


class DeviceLifeCycleTest(CliTestCase):

    def test_register_list_sign_revoke_crl_audit(self):
        self.serve()
        r = self.cli("device", "register", "SN-1", "--display-name", "Line 1 sensor",
                     "--group", "line-1", "--attr", "site=lyon")
        self.assertIn("comm_id:", r.stdout)
        self.assertRegex(r.stdout, r"status:\s+ACTIVE")
        self.assertError(self.cli("device", "register", "SN-1", expect=None), 4, "ALREADY_EXISTS")
        self.cli("--request-id", "e2e-req-0001", "device", "register", "SN-2")
        self.cli("device", "register", "SN-3", "--status", "suspended")

        dev = self.json("device", "get", "SN-1")
        self.assertEqual((dev["commId"], dev["status"], dev["attributes"], dev["groups"]),
                         ("SN-1", "DEVICE_STATUS_ACTIVE", {"site": "lyon"}, ["line-1"]))
        dev = self.json("device", "update", "SN-1", "--attr", "lot=7", "--group", "line-2")
        self.assertEqual((dev["attributes"], dev["groups"]),
                         ({"site": "lyon", "lot": "7"}, ["line-2"]))

        # The table: a header, one aligned row per device.
        lines = self.cli("device", "list").stdout.splitlines()
        self.assertEqual(lines[0].split(), ["COMM-ID", "STATUS", "DISPLAY-NAME", "GROUPS",
                                            "ATTRIBUTES", "UPDATED"])
        self.assertEqual([l.split()[0] for l in lines[1:]], ["SN-1", "SN-2", "SN-3"])
        col = lines[0].index("STATUS")
        self.assertEqual([l[col:].split()[0] for l in lines[1:]],
                         ["ACTIVE", "ACTIVE", "SUSPENDED"])
        # JSON: one document with every item, across pages (--limit 0: all; 1 per page here
        # would be the server's choice, the CLI follows the tokens either way).
        body = self.json("device", "list", "--limit", "0")
        self.assertEqual([d["commId"] for d in body["devices"]], ["SN-1", "SN-2", "SN-3"])
        self.assertEqual(body["nextPageToken"], "")
        body = self.json("device", "list", "--limit", "2")
        self.assertEqual(len(body["devices"]), 2)
        self.assertNotEqual(body["nextPageToken"], "", "a cut list says there is more")
        body = self.json("device", "list", "--status", "suspended")
        self.assertEqual([d["commId"] for d in body["devices"]], ["SN-3"])

        # A CSR made by openssl, signed, verified by openssl.
        pki = os.path.join(self.tmpdir, "pki")
        os.makedirs(pki)
        key, csr = os.path.join(pki, "sn1.key"), os.path.join(pki, "sn1.csr")
        openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", key, "-out", csr, "-subj", "/CN=SN-1")
        crt, chain = os.path.join(pki, "sn1.crt"), os.path.join(pki, "sn1.chain")
        self.cli("device", "suspend", "SN-1", "--reason", "lost in transit")
        self.assertError(self.cli("cert", "sign", "SN-1", "--csr", csr, expect=None), 4,
                         "FAILED_PRECONDITION")
        self.assertEqual(self.json("device", "resume", "SN-1")["status"], "DEVICE_STATUS_ACTIVE")
        signed = self.json("--request-id", "e2e-sign-1", "cert", "sign", "SN-1", "--csr", csr,
                           "--out", crt, "--chain-out", chain)["certificate"]
        self.assertEqual(signed["requestId"], "e2e-sign-1")
        self.assertEqual(read(crt), signed["certificatePem"])
        self.assertEqual(openssl("verify", "-CAfile", chain, crt).stdout.strip(), f"{crt}: OK")
        serial = signed["serial"]
        self.assertEqual(openssl("x509", "-in", crt, "-noout", "-serial").stdout.strip().lower(),
                         f"serial={serial}")
        # The same request id: the same certificate, replayed.
        again = self.json("--request-id", "e2e-sign-1", "cert", "sign", "SN-1", "--csr", csr)
        self.assertTrue(again["replayed"])
        self.assertEqual(again["certificate"]["serial"], serial)
        pem = self.cli("cert", "get", serial, "-o", "pem").stdout
        self.assertEqual(pem, signed["certificatePem"] + signed["chainPem"])
        rows = self.cli("cert", "list", "--comm-id", "SN-1").stdout.splitlines()
        self.assertEqual(rows[0].split()[:5], ["SERIAL", "ISSUER", "KIND", "NAME", "STATUS"])
        self.assertEqual(rows[1].split()[:5], [serial, "devices-1", "DEVICE", "SN-1", "ACTIVE"])

        # Revoke; the CRL (built in the background) lists it, per openssl.
        r = self.cli("cert", "revoke", serial, "--reason", "key-compromise", "--comment", "stolen")
        self.assertRegex(r.stdout, r"certificate\.status:\s+REVOKED")
        status = self.json("cert", "status", serial)
        self.assertEqual((status["status"], status["revocation"]["reason"]),
                         ("CERTIFICATE_STATUS_REVOKED", "REVOCATION_REASON_KEY_COMPROMISE"))
        crl_path = os.path.join(pki, "devices.crl")
        deadline = time.monotonic() + 30
        while True:
            r = self.cli("crl", "get", "devices-1", "-o", "pem")
            write(crl_path, r.stdout)
            text = openssl("crl", "-in", crl_path, "-noout", "-text").stdout
            if serial.upper() in text.replace(":", "").upper():
                break
            self.assertLess(time.monotonic(), deadline, f"serial not in the CRL: {text}")
            time.sleep(0.3)
        self.assertIn("Key Compromise", text)
        openssl("crl", "-in", crl_path, "-noout", "-CAfile", chain)  # signature verifies
        bundle = write(os.path.join(pki, "chain+crl.pem"), read(chain) + read(crl_path))
        r = openssl("verify", "-crl_check", "-CAfile", bundle, crt, check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("certificate revoked", r.stdout + r.stderr)
        der = os.path.join(pki, "devices.crl.der")
        self.cli("crl", "get", "devices-1", "-o", "der", "--out", der)
        self.assertIn("Devices CA", openssl("crl", "-inform", "DER", "-in", der, "-noout",
                                            "-issuer").stdout)
        self.assertRegex(self.cli("crl", "get", "devices-1").stdout, r"entry_count:\s+1")
        self.assertError(self.cli("crl", "get", "nope-1", expect=None), 3, "NOT_FOUND")
        self.cli("crl", "get", "devices-1", "-o", "der", expect=2)  # binary needs --out

        # Decommissioned for good; a device with certificates cannot be deleted, one without
        # can.
        self.cli("device", "decommission", "SN-1", "--reason", "end of life")
        self.assertError(self.cli("device", "resume", "SN-1", expect=None), 4,
                         "FAILED_PRECONDITION")
        self.assertError(self.cli("device", "delete", "SN-1", expect=None), 4,
                         "FAILED_PRECONDITION")
        self.assertEqual(self.cli("device", "delete", "SN-2").stdout, "deleted device SN-2\n")
        self.assertError(self.cli("device", "get", "SN-2", expect=None), 3, "NOT_FOUND")

        # The audit log: its chain is intact, and the call made with --request-id is there.
        r = self.cli("audit", "verify")
        self.assertRegex(r.stdout, r"intact:\s+yes")
        self.assertTrue(self.json("audit", "verify")["intact"])
        events = self.json("audit", "list", "--for-request", "e2e-req-0001")["events"]
        self.assertEqual([(e["method"], e["resourceId"], e["actor"]["name"]) for e in events],
                         [("/fleetca.v1.DeviceRegistryService/RegisterDevice", "SN-2", "admin")])
        table = self.cli("audit", "list", "--for-request", "e2e-sign-1").stdout.splitlines()
        self.assertEqual(table[0].split(), ["SEQ", "TIME", "ACTOR", "ROLE", "METHOD", "RESOURCE",
                                            "CODE", "REQUEST-ID", "MESSAGE"])
        self.assertEqual(len(table), 2, table)  # signed once, replayed once (not audited)
        self.assertIn(f"certificate/{serial}", table[1])
        self.assertIn("e2e-sign-1", table[1])

    def test_every_noun_answers(self):
        self.serve()
        self.cli("device", "register", "SN-1", "--attr", "site=lyon")
        self.assertEqual([i["issuerId"] for i in self.json("ca", "list")["issuers"]],
                         ["brokers-1", "devices-1", "operators-1", "root-1"])
        created = self.json("ca", "init")
        self.assertEqual(created["createdIssuerIds"], [])
        bundle = self.cli("ca", "bundle").stdout
        self.assertEqual(bundle.count("BEGIN CERTIFICATE"), 4)
        root = self.cli("ca", "get", "root-1", "-o", "pem").stdout
        self.assertIn("BEGIN CERTIFICATE", root)
        self.assertIn("device", self.cli("cert", "profiles").stdout)
        profiles = [p["name"] for p in self.json("acl", "profile", "list")["profiles"]]
        self.assertEqual(profiles, ["controller", "device", "watcher"])
        self.cli("acl", "profile", "create", "site-readers", "--rule", "read:sites/%{site}/#",
                 "--description", "site telemetry")
        self.cli("acl", "assign", "site-readers", "--group", "line-1")
        self.cli("device", "update", "SN-1", "--group", "line-1")
        resolved = self.json("acl", "resolve", "--device", "SN-1")
        self.assertIn({"topicFilter": "sites/lyon/#", "access": "ACL_ACCESS_READ",
                       "topicPattern": "sites/%{site}/#", "profileName": "site-readers",
                       "subjectType": "ACL_SUBJECT_TYPE_GROUP", "subjectId": "line-1"},
                      resolved["rules"])
        self.assertIn("sites/lyon/#", self.cli("acl", "resolve", "--device", "SN-1").stdout)
        assignments = self.json("acl", "assignments", "--profile", "site-readers")["assignments"]
        self.assertEqual([(a["subjectType"], a["subjectId"]) for a in assignments],
                         [("ACL_SUBJECT_TYPE_GROUP", "line-1")])
        self.assertError(self.cli("acl", "profile", "delete", "site-readers", expect=None), 4,
                         "FAILED_PRECONDITION")
        self.cli("acl", "unassign", "site-readers", "--group", "line-1")
        self.cli("acl", "profile", "delete", "site-readers")

        self.cli("broker", "register", "broker-1", "--dns", "broker.example")
        self.assertEqual(self.json("broker", "get", "broker-1")["allowedDnsNames"],
                         ["broker.example"])
        self.assertIn("broker-1", self.cli("broker", "list").stdout)
        check = self.json("broker", "check-topic", "--device", "SN-1", "--topic",
                          "devices/SN-1/telemetry", "--operation", "publish")
        self.assertTrue(check["allowed"], check)
        check = self.json("broker", "check-topic", "--device", "SN-1", "--topic",
                          "devices/SN-2/telemetry", "--operation", "publish")
        self.assertFalse(check["allowed"], check)
        watch = self.cli("broker", "watch", "broker-1", "--until-snapshot-end", "-o", "json")
        messages = [json.loads(l) for l in watch.stdout.splitlines()]
        self.assertIn("snapshotBegin", messages[0])
        self.assertIn("snapshotEnd", messages[-1])
        self.cli("broker", "update", "broker-1", "--display-name", "Broker one")
        self.cli("broker", "delete", "broker-1")
        self.assertError(self.cli("broker", "get", "broker-1", expect=None), 3, "NOT_FOUND")
        # Not built yet on the server: reported cleanly, with its own exit code.
        self.assertError(self.cli("ca", "rotate", "devices-1", expect=None), 8, "UNIMPLEMENTED")
        # External CAs: a customer CA made with openssl, registered with the CLI; a device
        # certificate it signed, registered with `cert register-external`.
        pki = Pki(os.path.join(self.tmpdir, "customer"))
        ca_key, ca_cert = pki.self_signed_ca("customer", "/O=Customer/CN=Customer Devices CA")
        registered = self.json("ca", "external", "register", "customer", "--certificate", ca_cert,
                               "--display-name", "Customer devices")
        self.assertTrue(registered["enabled"], registered)
        listed = self.cli("ca", "external", "list").stdout
        self.assertIn("customer", listed)
        self.cli("device", "register", "SN-EXT")
        key, csr = pki.csr("sn-ext", "/CN=SN-EXT")
        pki.sign("sn-ext", csr, ca_cert, ca_key, ["basicConstraints=critical,CA:FALSE",
                                                  "extendedKeyUsage=clientAuth"])
        cert = self.json("cert", "register-external", "SN-EXT", "--certificate",
                         pki.path("sn-ext.crt"))
        self.assertTrue(cert["certificate"]["external"], cert)
        self.assertEqual(cert["certificate"]["issuerId"], "customer")
        self.assertError(self.cli("ca", "external", "delete", "customer", expect=None), 4,
                         "FAILED_PRECONDITION")
        self.assertError(self.cli("cert", "register-external", "SN-OTHER", "--certificate",
                                  pki.path("sn-ext.crt"), expect=None), 2, "INVALID_ARGUMENT")


class ImportTest(CliTestCase):

    def count_devices(self, prefix):
        return len(self.json("device", "list", "--prefix", prefix, "--limit", "0")["devices"])

    def test_import_10000_rows_interrupted_and_resumed(self):
        self.serve()
        bad = IMPORT_ROWS // BAD_EVERY
        good = IMPORT_ROWS - bad

        # 1. A whole import, piped: no progress bar, a summary, exit 7 (some rows failed).
        path = import_csv(os.path.join(self.tmpdir, "devices.csv"), "a-")
        results = path + ".results.jsonl"
        r = self.cli("device", "import", path, "--batch-size", "500", expect=7)
        self.assertEqual(summary(r.stderr), {"rows": IMPORT_ROWS, "registered": good,
                                             "exists": 0, "failed": bad, "skipped": 0})
        self.assertNotIn("\r", r.stderr)
        self.assertNotIn("rows/s", r.stderr)
        self.assertEqual(r.stdout, "")
        lines = result_lines(results)
        self.assertEqual(len(lines), IMPORT_ROWS)
        self.assertEqual([l["line"] for l in lines], list(range(2, IMPORT_ROWS + 2)))
        self.assertEqual(lines[0], {"line": 2, "comm_id": "a-00000", "outcome": "registered",
                                    "code": "OK", "message": ""})
        failed = [l for l in lines if l["outcome"] == "failed"]
        self.assertEqual(len(failed), bad)
        self.assertTrue(all(l["code"] == "INVALID_ARGUMENT" and "comm_id" in l["message"]
                            for l in failed), failed[:2])
        self.assertEqual(self.count_devices("a-"), good)
        dev = self.json("device", "get", "a-00042")
        self.assertEqual((dev["displayName"], dev["groups"], dev["attributes"]),
                         ("Device 42, a-", ["all", "line-0"], {"site": "site-0", "lot": "0"}))
        # Re-run: every done row skipped, the bad ones tried again.
        r = self.cli("device", "import", path, expect=7)
        self.assertEqual(summary(r.stderr), {"rows": IMPORT_ROWS, "registered": 0, "exists": 0,
                                             "failed": bad, "skipped": good})

        # 2. Killed (SIGKILL) in the middle: the rows recorded are skipped on the re-run; a
        # batch that committed without its results written comes back ALREADY_EXISTS (exists).
        path = import_csv(os.path.join(self.tmpdir, "killed.csv"), "k-")
        results = path + ".results.jsonl"
        proc = subprocess.Popen([CLI, "device", "import", path, "--batch-size", "100"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env=self.env(), preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 120
        while len(result_lines(results)) < 3000 and proc.poll() is None:
            self.assertLess(time.monotonic(), deadline, "the import made no progress")
            time.sleep(0.01)
        proc.kill()
        proc.wait()
        proc.stderr.close()
        recorded = len(result_lines(results))
        log(f"killed the import after {recorded} recorded rows")
        self.assertLess(recorded, IMPORT_ROWS, "the import ended before it could be killed")
        self.assertEqual(recorded % 100, 0, "results are written a whole batch at a time")
        r = self.cli("device", "import", path, "--batch-size", "100", expect=7)
        s = summary(r.stderr)
        self.assertEqual(s["skipped"] + s["registered"] + s["exists"] + s["failed"], IMPORT_ROWS)
        done_before = sum(1 for l in result_lines(results)[:recorded] if l["outcome"] != "failed")
        self.assertEqual(s["skipped"], done_before)
        self.assertEqual(s["failed"], bad)
        # The batch in flight (the next 100 rows) committed or not.
        in_flight = sum(1 for i in range(recorded, min(recorded + 100, IMPORT_ROWS))
                        if i % BAD_EVERY != BAD_EVERY - 1)
        self.assertIn(s["exists"], (0, in_flight), s)
        self.assertEqual(self.count_devices("k-"), good)
        outcome = {}
        for l in result_lines(results):
            outcome[l["line"]] = l["outcome"]
        self.assertEqual(len(outcome), IMPORT_ROWS)
        self.assertEqual(sum(1 for o in outcome.values() if o != "failed"), good)

        # 3. Results lost after the batch committed (the file cut short, a torn last line):
        # those rows come back as "exists", not as failures.
        with open(results) as f:
            text = f.readlines()
        with open(results, "w") as f:
            f.writelines(text[:5000])
            f.write('{"line": 5002, "comm_id": "k-')
        r = self.cli("device", "import", path, "--batch-size", "100", expect=7)
        s = summary(r.stderr)
        kept_done = sum(1 for l in text[:5000] if '"failed"' not in l)
        self.assertEqual(s, {"rows": IMPORT_ROWS, "registered": 0, "skipped": kept_done,
                             "failed": bad, "exists": IMPORT_ROWS - kept_done - bad})

        # 4. SIGINT: the batch in flight completes and is recorded, then exit 130; the re-run
        # finishes the job.
        path = import_csv(os.path.join(self.tmpdir, "interrupted.csv"), "i-")
        results = path + ".results.jsonl"
        proc = subprocess.Popen([CLI, "device", "import", path, "--batch-size", "50"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                env=self.env(), preexec_fn=_die_with_parent)
        while len(result_lines(results)) < 1000 and proc.poll() is None:
            self.assertLess(time.monotonic(), deadline + 120, "the import made no progress")
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        stderr = proc.communicate(timeout=120)[1]
        self.assertEqual(proc.returncode, 130, stderr)
        self.assertIn("interrupted", stderr)
        s = summary(stderr)
        recorded = result_lines(results)
        self.assertEqual(len(recorded), s["rows"])
        self.assertEqual(len(recorded) % 50, 0)
        r = self.cli("device", "import", path, "--batch-size", "50", expect=7)
        s2 = summary(r.stderr)
        self.assertEqual(s2["skipped"], s["registered"])
        self.assertEqual(s2["exists"], 0)
        self.assertEqual(s2["skipped"] + s2["registered"], good)
        self.assertEqual(self.count_devices("i-"), good)

        # 5. JSON lines from stdin, with an explicit result file.
        jsonl = "\n".join(json.dumps({"commId": f"j-{i}", "attributes": {"n": str(i)}})
                          for i in range(20)) + "\n{broken\n"
        out = os.path.join(self.tmpdir, "stdin.results.jsonl")
        self.assertError(self.cli("device", "import", "-", "--format", "jsonl", input=jsonl,
                                  expect=None), 2, "reading standard input")
        r = self.cli("device", "import", "-", "--format", "jsonl", "--results", out,
                     "-o", "json", input=jsonl, expect=7)
        self.assertEqual(json.loads(r.stdout)["registered"], 20)
        self.assertEqual(result_lines(out)[-1]["line"], 21)
        self.assertEqual(self.count_devices("j-"), 20)

    def test_progress_bar_only_on_a_terminal(self):
        self.serve()
        path = import_csv(os.path.join(self.tmpdir, "tty.csv"), "t-", rows=2000)
        master, slave = pty.openpty()
        proc = subprocess.Popen([CLI, "device", "import", path, "--batch-size", "200"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
                                env=self.env(), preexec_fn=_die_with_parent)
        os.close(slave)
        seen = b""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the other side is closed
                    break
                if not data:
                    break
                seen += data
            elif proc.poll() is not None:
                break
        os.close(master)
        self.assertEqual(proc.wait(timeout=60), 7)
        proc.stdout.close()
        text = seen.decode()
        self.assertIn("\r[", text)
        self.assertIn("] 100% 2000 rows", text)
        self.assertIn("rows/s", text)
        self.assertEqual(summary(text)["registered"], 1998)
        # Piped: the summary only (checked in the other test too), and --no-progress on a tty.
        r = self.cli("device", "import", path, expect=7)
        self.assertNotIn("rows/s", r.stderr)
        self.assertEqual(summary(r.stderr)["skipped"], 1998)


class IdentitiesErrorsAndSettingsTest(CliTestCase):

    def test_identities_exit_codes_and_connection_settings(self):
        self.serve()
        # identity issue --out: key, certificate and chain in a 0600 file, as init writes.
        cred = os.path.join(self.tmpdir, "broker-1.pem")
        self.cli("broker", "register", "broker-1")  # a broker identity is named after one
        r = self.cli("identity", "issue", "broker-1", "--role", "broker", "--out", cred)
        self.assertRegex(r.stdout, r"identity\.role:\s+BROKER")
        self.assertNotIn("PRIVATE KEY", r.stdout)
        self.assertEqual(stat.S_IMODE(os.stat(cred).st_mode), 0o600)
        text = read(cred)
        self.assertEqual(text.count("BEGIN PRIVATE KEY"), 1)
        self.assertEqual(text.count("BEGIN CERTIFICATE"), 3)  # its own, operators-1, root-1
        self.assertIn("URI:fleetca://role/broker/broker-1",
                      openssl("x509", "-noout", "-text", "-in", cred).stdout)
        # No key on stdout unless asked: refused without --out, absent from JSON.
        r = self.cli("identity", "issue", "viewer-x", "--role", "viewer", expect=2)
        self.assertNotIn("PRIVATE KEY", r.stdout + r.stderr)
        viewer = os.path.join(self.tmpdir, "viewer.pem")
        body = self.json("identity", "issue", "viewer-1", "--role", "viewer", "--out", viewer)
        self.assertEqual(body["privateKeyPem"], "")
        self.assertEqual(body["identity"]["role"], "IDENTITY_ROLE_VIEWER")
        names = [i["name"] for i in self.json("identity", "list")["identities"]]
        self.assertEqual(names, ["admin", "broker-1", "viewer-1"])
        self.assertEqual(self.json("identity", "get", "broker-1")["status"],
                         "IDENTITY_STATUS_ACTIVE")

        # The broker credential works where a broker may go, and nowhere else.
        as_broker = self.env(FLEETCA_CREDENTIAL=cred)
        self.assertIn("BEGIN CERTIFICATE", self.cli("ca", "bundle", env=as_broker).stdout)
        self.assertError(self.cli("device", "register", "SN-9", env=as_broker, expect=None), 5,
                         "PERMISSION_DENIED")
        as_viewer = self.env(FLEETCA_CREDENTIAL=viewer)
        self.cli("device", "list", env=as_viewer)
        self.assertError(self.cli("device", "register", "SN-9", env=as_viewer, expect=None), 5,
                         "PERMISSION_DENIED")
        # Without a client certificate: UNAUTHENTICATED, the same class.
        anonymous = self.env(credential=False, FLEETCA_ADDRESS=self.address,
                             FLEETCA_CACERT=self.cacert)
        self.assertError(self.cli("device", "list", env=anonymous, expect=None), 5,
                         "UNAUTHENTICATED")
        # A revoked identity is refused at once.
        self.cli("identity", "revoke", "viewer-1", "--reason", "privilege-withdrawn")
        self.assertError(self.cli("device", "list", env=as_viewer, expect=None), 5,
                         "UNAUTHENTICATED")

        # Exit codes: NOT_FOUND 3, bad arguments 2 (CLI11's own, ours, the server's
        # INVALID_ARGUMENT), conflict 4, unavailable 6.
        self.assertError(self.cli("device", "get", "nope", expect=None), 3, "NOT_FOUND")
        r = self.cli("device", "frobnicate", expect=2)
        self.assertEqual(r.stdout, "")
        self.cli("device", "get", expect=2)  # the comm-ID is required
        r = self.cli("device", "list", "--status", "sleeping", expect=2)
        self.assertIn("--status: 'sleeping' is not one of active|suspended|decommissioned",
                      r.stderr)
        self.assertError(self.cli("device", "register", "bad/id", expect=None), 2,
                         "INVALID_ARGUMENT")
        self.assertError(self.cli("identity", "issue", "broker-1", "--role", "broker",
                                  "--out", os.path.join(self.tmpdir, "again.pem"), expect=None),
                         4, "ALREADY_EXISTS")
        self.assertError(self.cli("--address", "127.0.0.1:1", "--timeout", "3s", "device", "get",
                                  "x", expect=None), 6, "UNAVAILABLE")
        self.cli("-o", "yaml", "device", "list", expect=2)
        self.assertIn("Exit codes:", self.cli("--help").stdout)

        # Connection settings. Separate --cert/--key files from the environment.
        key = write(os.path.join(self.tmpdir, "admin.key"),
                    openssl("pkey", "-in", self.admin_pem).stdout, 0o600)
        cert = write(os.path.join(self.tmpdir, "admin.crt"),
                     openssl("x509", "-in", self.admin_pem).stdout)
        env = self.env(credential=False, FLEETCA_ADDRESS=self.address,
                       FLEETCA_CACERT=self.cacert, FLEETCA_CERT=cert, FLEETCA_KEY=key)
        self.cli("device", "list", env=env)
        # A key readable by others is refused before any call.
        os.chmod(key, 0o644)
        r = self.cli("device", "list", env=env, expect=1)
        self.assertIn("admin.key", r.stderr)
        os.chmod(key, 0o600)
        # No --cacert: the CA certificates of the credential's chain verify the server.
        self.cli("device", "list", env=self.env(credential=False, FLEETCA_ADDRESS=self.address,
                                                FLEETCA_CREDENTIAL=self.admin_pem))
        # A config file: --config, FLEETCA_CONFIG, or ~/.config/fleetca/config.toml.
        config = write(os.path.join(self.tmpdir, "fleetca.toml"),
                       f'# fleetca CLI settings\naddress = "{self.address}"\n'
                       f'cacert = "{self.cacert}"\ncredential = "{self.admin_pem}"\n'
                       f'output = "json"\n')
        bare = self.env(credential=False)
        body = json.loads(self.cli("--config", config, "identity", "list", env=bare).stdout)
        self.assertIn("admin", [i["name"] for i in body["identities"]])
        self.cli("identity", "list", env=dict(bare, FLEETCA_CONFIG=config))
        os.makedirs(os.path.join(self.home, ".config", "fleetca"))
        default = os.path.join(self.home, ".config", "fleetca", "config.toml")
        write(default, read(config))
        json.loads(self.cli("identity", "list", env=bare).stdout)
        # Flags beat the environment, which beats the config file.
        self.assertEqual(self.cli("-o", "table", "identity", "list", env=bare).stdout.split()[0],
                         "NAME")
        wrong = dict(bare, FLEETCA_ADDRESS="127.0.0.1:1")
        self.assertError(self.cli("--timeout", "3s", "identity", "list", env=wrong, expect=None),
                         6, "UNAVAILABLE")
        self.cli("--address", self.address, "identity", "list", env=wrong)
        write(default, read(config).replace(self.address, "127.0.0.1:1"))
        self.cli("identity", "list", env=dict(bare, FLEETCA_ADDRESS=self.address))
        r = self.cli("identity", "list", "--timeout", "3s", env=bare, expect=6)
        write(config, "adress = 'typo:1'\n")
        r = self.cli("--config", config, "identity", "list", env=bare, expect=2)
        self.assertIn("unknown setting 'adress'", r.stderr)
        r = self.cli("--config", os.path.join(self.tmpdir, "missing.toml"), "identity", "list",
                     env=bare, expect=2)


if __name__ == "__main__":
    unittest.main()
