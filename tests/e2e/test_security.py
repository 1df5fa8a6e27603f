"""API security end to end: TLS by default, client certificates with roles, the
authorization matrix (every RPC x every role, plus no certificate, a foreign CA, an expired
and a revoked identity), denied calls without side effects, and the audit chain's
verify command finding a row edited in psql.

Clients are buf curl (TLS with --cacert/--cert/--key) and the openssl CLI; the server is
the real fleetca-server on a real PostgreSQL, its credentials made by `fleetca-server init`.
"""

import json
import os
import stat
import subprocess
import time
import unittest

from fleetca_e2e import BUF, PROTO_DIR, REGISTRY, SERVER, parallel
from test_issuance import BROKERS, CA, ISSUANCE, IssuanceTestCase, read, run, write

IDENTITY = "fleetca.v1.IdentityService"
AUDIT = "fleetca.v1.AuditService"
ROLES = ["admin", "provisioner", "broker", "viewer", "mqtt-client", "device"]
ROLE_ENUM = {"admin": "IDENTITY_ROLE_ADMIN", "provisioner": "IDENTITY_ROLE_PROVISIONER",
             "broker": "IDENTITY_ROLE_BROKER", "viewer": "IDENTITY_ROLE_VIEWER",
             "mqtt-client": "IDENTITY_ROLE_MQTT_CLIENT"}


def role_table():
    """{full method: set of roles}, from `fleetca-server roles` (the server's own table)."""
    out = subprocess.run([SERVER, "roles"], capture_output=True, text=True, timeout=60, check=True)
    table = {}
    for line in out.stdout.splitlines():
        row = json.loads(line)
        table[row["method"]] = set(row["roles"])
    return table


def proto_methods():
    """Every RPC declared in proto/fleetca/v1/*.proto, as "/fleetca.v1.Service/Method"
    (read from the .proto files, independently of the server's table)."""
    methods = []
    folder = os.path.join(PROTO_DIR, "fleetca", "v1")
    for name in sorted(os.listdir(folder)):
        service = None
        for line in read(os.path.join(folder, name)).splitlines():
            words = line.split()
            if words[:1] == ["service"]:
                service = words[1]
            elif words[:1] == ["rpc"] and service:
                methods.append(f"/fleetca.v1.{service}/{words[1].split('(')[0]}")
    return methods


class SecurityTestCase(IssuanceTestCase):
    """A database initialised by `fleetca-server init`, and a TLS server on it."""

    def init(self, db):
        """Runs init; returns the admin credential (dict for Client) and the init log."""
        cred = os.path.join(self.tmpdir, "admin.pem")
        init = self.start_server(db.url, command="init", name="init",
                                 args=[f"--admin_credential_file={cred}"])
        self.assertEqual(init.wait_exit(), 0, init.describe())
        return {"cacert": os.path.join(self.tmpdir, "ca.pem"), "cert": cred, "key": cred}, init

    def serve_tls(self, label=None, args=()):
        db = self.new_database(label)
        admin, _ = self.init(db)
        server = self.start_server(db.url, tls=admin,
                                   args=[f"--tls_dir={self.tmpdir}", *args])
        return db, server, server.wait_ready()

    def credential(self, name, key_pem, cert_pem, chain_pem, cacert):
        path = write(os.path.join(self.tmpdir, f"{name}.pem"), key_pem + cert_pem + chain_pem,
                     mode=0o600)
        return {"cacert": cacert, "cert": path, "key": path}

    def issue(self, admin, name, role, validity=None):
        """IssueIdentity with a server-generated key; returns the credential."""
        req = {"name": name, "role": ROLE_ENUM[role],
               "generateKeyAlgorithm": "KEY_ALGORITHM_ECDSA_P256"}
        if validity:
            req["validity"] = validity
        body = self.ok(admin.call("IssueIdentity", req, service=IDENTITY), f"IssueIdentity {name}")
        self.assertEqual(body["identity"]["role"], ROLE_ENUM[role])
        cert = body["certificate"]
        # The certificate as stored: the same as the identity's latest, requested by the admin.
        self.assertEqual(dict(cert, chainPem=""), body["identity"]["latestCertificate"])
        self.assertEqual(cert["requestedBy"], "admin")
        self.assertEqual(len(cert["sha256Fingerprint"]), 64, cert)
        return self.credential(name, body["privateKeyPem"], cert["certificatePem"],
                               cert["chainPem"], admin.tls["cacert"])

    def device_credential(self, admin, comm_id):
        key_path, cert = self.new_device_cert(admin, comm_id)
        return self.credential(comm_id, read(key_path), cert["certificatePem"], cert["chainPem"],
                               admin.tls["cacert"])

    def foreign_credential(self, cacert):
        """An "admin" certificate with fleetca's role URI, from a CA fleetca does not know."""
        ca_key, ca_cert = self.pki.self_signed_ca("foreign-ca", "/CN=Foreign Root")
        key_path, csr = self.pki.csr("foreign-admin", "/CN=admin")
        cert = self.pki.sign("foreign-admin", csr, ca_cert, ca_key, [
            "basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature",
            "extendedKeyUsage=clientAuth", "subjectAltName=URI:fleetca://role/admin/admin"])
        return self.credential("foreign-admin", read(key_path), cert, "", cacert)

    def snapshot(self, db):
        """A digest of every table's rows, once the audit sequencer has chained every entry."""
        deadline = time.monotonic() + 30
        while db.query("SELECT count(*) FROM audit_log WHERE chain_seq IS NULL") != "0":
            self.assertLess(time.monotonic(), deadline, "audit entries left unchained")
            time.sleep(0.2)
        tables = db.query("SELECT string_agg(tablename, ' ' ORDER BY tablename) FROM pg_tables "
                          "WHERE schemaname = 'public'").split()
        sql = " UNION ALL ".join(
            f"SELECT '{t}', count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) "
            f"FROM {t} x" for t in tables)
        return db.query(sql)


class TlsAndCredentialsTest(SecurityTestCase):

    def test_init_writes_the_admin_credential_and_reflection_needs_it(self):
        db = self.new_database("init")
        admin_tls, init = self.init(db)
        written = [l for l in init.log_lines() if l.get("msg") == "admin credential written"]
        self.assertEqual(len(written), 1, init.describe())
        self.assertEqual(written[0]["file"], os.path.realpath(admin_tls["cert"]))
        self.assertEqual(stat.S_IMODE(os.stat(admin_tls["cert"]).st_mode), 0o600)
        # The file holds a key and a certificate naming the admin role.
        text = read(admin_tls["cert"])
        self.assertIn("PRIVATE KEY", text)
        self.assertIn("URI:fleetca://role/admin/admin", self.pki.text(text))

        # A second init writes nothing: the admin exists.
        again = self.start_server(db.url, command="init", name="init-again",
                                  args=[f"--admin_credential_file={self.tmpdir}/second.pem"])
        self.assertEqual(again.wait_exit(), 0, again.describe())
        self.assertFalse(os.path.exists(f"{self.tmpdir}/second.pem"))

        server = self.start_server(db.url, tls=admin_tls, args=[f"--tls_dir={self.tmpdir}"])
        admin = server.wait_ready()
        # The reflection client with the credential lists the API and calls it.
        r = admin.list_services()
        self.assertCode(r, "OK", "--list-services with the admin credential")
        self.assertIn(REGISTRY, r.stdout.split())
        body = self.ok(admin.call("ListIdentities", {}, service=IDENTITY), "ListIdentities")
        self.assertEqual([i["name"] for i in body["identities"]], ["admin"])
        # Without it: no reflection, and a call with the schema at hand is UNAUTHENTICATED.
        anonymous = admin.as_({"cacert": admin_tls["cacert"]})
        r = anonymous.list_services()
        self.assertNotEqual(r.exit_code, 0, f"reflection without a credential: {r!r}")
        r = anonymous.call("ListDevices", {}, schema=PROTO_DIR)
        self.assertCode(r, "UNAUTHENTICATED", "ListDevices without a certificate")
        self.assertIn("client certificate", r.message)
        # Health answers everyone (load balancers, kubelet probes).
        self.assertEqual(self.ok(anonymous.call("Check", {}, service="grpc.health.v1.Health",
                                                schema=PROTO_DIR))["status"], "SERVING")
        # The server certificate verifies against ca.pem for the name "localhost".
        server_pem = read(os.path.join(self.tmpdir, "server.pem"))
        r = run(["openssl", "verify", "-CAfile", admin_tls["cacert"], "-verify_hostname",
                 "localhost", "-purpose", "sslserver",
                 write(os.path.join(self.tmpdir, "leaf.pem"), server_pem.split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"),
                 ], check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_plaintext_only_on_loopback_and_tls_versions(self):
        db, server, admin = self.serve_tls("tlsversions")
        port = server.port
        # openssl s_client: TLS 1.1 is refused, 1.2 and 1.3 are accepted.
        for version, accepted in (("-tls1_1", False), ("-tls1_2", True), ("-tls1_3", True)):
            r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                                version, "-alpn", "h2", "-CAfile", admin.tls["cacert"],
                                "-servername", "localhost", "-verify_return_error"],
                               input="", capture_output=True, text=True, errors="replace",
                               timeout=60)
            if accepted:
                self.assertEqual(r.returncode, 0, f"{version}: {r.stdout[-2000:]}{r.stderr}")
                self.assertIn("Verify return code: 0 (ok)", r.stdout)
            else:
                self.assertNotEqual(r.returncode, 0, f"{version} was accepted: {r.stdout[-2000:]}")
        # --insecure_plaintext on a non-loopback address is refused at start.
        bad = self.start_server(db.url, name="plain-any", listen="0.0.0.0:0",
                                args=["--insecure_plaintext"])
        self.assertEqual(bad.wait_exit(), 2, bad.describe())
        self.assertIn("--insecure_plaintext", bad.log_text())
        # TLS (the default) may listen on every address.
        anywhere = self.start_server(db.url, name="tls-any", listen="0.0.0.0:0", tls=admin.tls,
                                     args=[f"--tls_dir={self.tmpdir}/any"])
        self.ok(anywhere.wait_ready().health(), "health over TLS on 0.0.0.0")
        # --tls_dir was made, private; the key in it too.
        self.assertEqual(stat.S_IMODE(os.stat(f"{self.tmpdir}/any").st_mode), 0o700)
        self.assertEqual(stat.S_IMODE(os.stat(f"{self.tmpdir}/any/server.key").st_mode), 0o600)
        # Without --tls_dir: a temporary directory, gone when the server stops.
        temp = self.start_server(db.url, name="tls-temp", tls=admin.tls)
        self.ok(temp.wait_ready().health(), "health, certificate in a temporary directory")
        issued = [l for l in temp.log_lines() if l.get("msg") == "server certificate issued"]
        self.assertTrue(os.path.exists(issued[0]["file"]))
        self.assertEqual(temp.stop(), 0, temp.describe())
        self.assertFalse(os.path.exists(os.path.dirname(issued[0]["file"])))


class RolesTest(SecurityTestCase):

    def test_provisioner_signs_but_does_not_revoke(self):
        db, server, admin = self.serve_tls("provisioner")
        station = admin.as_(self.issue(admin, "station-12", "provisioner"))
        self.ok(station.call("RegisterDevice", {"device": {"commId": "imei-1"}}), "RegisterDevice")
        key_path, csr = self.pki.csr("imei-1", "/CN=imei-1")
        cert = self.sign(station, "imei-1", csr)
        serial = cert["serial"]
        r = station.call("RevokeIdentity", {"name": "admin"}, service=IDENTITY)
        self.assertCode(r, "PERMISSION_DENIED", "RevokeIdentity by a provisioner")
        self.assertIn("provisioner", r.message)
        r = station.call("SetDeviceStatus", {"commId": "imei-1", "status": "DEVICE_STATUS_SUSPENDED"})
        self.assertCode(r, "PERMISSION_DENIED", "SetDeviceStatus by a provisioner")
        r = station.call("RevokeCertificate", {"issuerId": cert["issuerId"], "serial": serial},
                         service="fleetca.v1.RevocationService")
        self.assertCode(r, "PERMISSION_DENIED", "RevokeCertificate by a provisioner")
        # It reads the certificates it requested, not others'.
        self.register(admin, "imei-2")
        _, csr2 = self.pki.csr("imei-2", "/CN=imei-2")
        other = self.sign(admin, "imei-2", csr2)
        listed = self.ok(station.call("ListCertificates", {}, service=ISSUANCE), "ListCertificates")
        self.assertEqual([c["serial"] for c in listed["certificates"]], [serial])
        self.ok(station.call("GetCertificate", {"serial": serial}, service=ISSUANCE), "own certificate")
        r = station.call("GetCertificate", {"serial": other["serial"]}, service=ISSUANCE)
        self.assertCode(r, "PERMISSION_DENIED", "another requester's certificate")
        self.assertIn("only the certificates it requested", r.message)
        listed = self.ok(admin.call("ListCertificates", {"kind": "CERTIFICATE_KIND_DEVICE"},
                                    service=ISSUANCE), "ListCertificates by the admin")
        self.assertEqual(len(listed["certificates"]), 2, listed)
        # The audit log names the station, its role and certificate serial.
        row = db.query("SELECT actor || ' ' || (details->'actor'->>'role') FROM audit_log "
                       "WHERE action = 'RegisterDevice' AND target = 'imei-1'")
        self.assertEqual(row, "station-12 provisioner")
        self.assertEqual(db.query("SELECT count(*) FROM audit_log WHERE actor = 'station-12' "
                                  "AND details->'actor'->>'serial' <> ''"), "2")

    def test_device_renews_its_own_certificate_only(self):
        db, server, admin = self.serve_tls("device")
        dev = admin.as_(self.device_credential(admin, "imei-7"))
        self.device_credential(admin, "imei-8")
        key_path, csr = self.pki.csr("imei-7-next", "/CN=imei-7")
        r = dev.call("RenewDeviceCertificate", {"commId": "imei-7", "csrPem": csr,
                                                "requestId": "renew-7"}, service=ISSUANCE)
        self.ok(r, "a device renewing itself")
        renewed_call = r
        key_path, csr = self.pki.csr("imei-8-next", "/CN=imei-8")
        r = dev.call("RenewDeviceCertificate", {"commId": "imei-8", "csrPem": csr,
                                                "requestId": "renew-8"}, service=ISSUANCE)
        self.assertCode(r, "PERMISSION_DENIED", "a device renewing another")
        self.assertCode(dev.call("ListDevices", {}), "PERMISSION_DENIED", "ListDevices by a device")
        renewed = renewed_call.body["certificate"]["serial"]
        self.ok(dev.call("GetCertificate", {"serial": renewed}, service=ISSUANCE), "its own certificate")
        theirs = self.ok(admin.call("ListCertificates", {"commId": "imei-8"}, service=ISSUANCE))
        r = dev.call("GetCertificate", {"serial": theirs["certificates"][0]["serial"]},
                     service=ISSUANCE)
        self.assertCode(r, "PERMISSION_DENIED", "a device reading another's certificate")

    def test_broker_reads_its_own_broker_only(self):
        db, server, admin = self.serve_tls("broker")
        self.register_broker(admin, "broker-1")
        self.register_broker(admin, "broker-2")
        broker = admin.as_(self.issue(admin, "broker-1", "broker"))
        body = self.ok(broker.call("GetBroker", {"brokerId": "broker-1"}, service=BROKERS))
        self.assertEqual(body["broker"]["brokerId"], "broker-1")
        r = broker.call("GetBroker", {"brokerId": "broker-2"}, service=BROKERS)
        self.assertCode(r, "PERMISSION_DENIED", "a broker reading another broker")
        self.assertCode(broker.call("ListBrokers", {}, service=BROKERS), "PERMISSION_DENIED",
                        "ListBrokers by a broker")
        # A broker identity names a registered broker.
        r = admin.call("IssueIdentity", {"name": "broker-9", "role": "IDENTITY_ROLE_BROKER",
                                         "generateKeyAlgorithm": "KEY_ALGORITHM_ECDSA_P256"},
                       service=IDENTITY)
        self.assertCode(r, "FAILED_PRECONDITION", "a broker identity for an unknown broker")

    def test_revoked_and_expired_identities_are_refused_at_once(self):
        db, server, admin = self.serve_tls("revoked")
        viewer = admin.as_(self.issue(admin, "viewer-1", "viewer"))
        self.ok(viewer.call("ListDevices", {}), "ListDevices by a viewer")
        self.ok(admin.call("RevokeIdentity", {"name": "viewer-1", "reason": "REVOCATION_REASON_KEY_COMPROMISE"},
                           service=IDENTITY), "RevokeIdentity")
        r = viewer.call("ListDevices", {}, schema=PROTO_DIR)
        self.assertCode(r, "UNAUTHENTICATED", "a revoked identity")
        self.assertIn("revoked", r.message)
        short = admin.as_(self.issue(admin, "viewer-2", "viewer", validity="2s"))
        time.sleep(3)
        r = short.call("ListDevices", {}, schema=PROTO_DIR)
        self.assertCode(r, "UNAUTHENTICATED", "an expired identity")
        self.assertIn("expired", r.message)
        # The last admin cannot revoke itself away.
        r = admin.call("RevokeIdentity", {"name": "admin"}, service=IDENTITY)
        self.assertCode(r, "FAILED_PRECONDITION", "revoking the last admin")

    def test_issuance_rate_limit_per_identity(self):
        # One token per 50 s after a burst of 2: four calls exhaust it however slowly a
        # loaded machine runs them (at 1/s, slow grpcurl start-ups refilled the bucket).
        db, server, admin = self.serve_tls("ratelimit", args=["--issuance_rate_limit=0.02",
                                                              "--issuance_burst=2"])
        a = admin.as_(self.issue(admin, "station-a", "provisioner"))
        b = admin.as_(self.issue(admin, "station-b", "provisioner"))
        codes = []
        for i in range(4):
            codes.append(a.call("SignDeviceCsr", {"commId": f"none-{i}", "csrPem": "x",
                                                  "requestId": f"a-{i}"}, service=ISSUANCE).code)
        self.assertIn("RESOURCE_EXHAUSTED", codes, codes)
        # station-b's bucket is its own.
        r = b.call("SignDeviceCsr", {"commId": "none", "csrPem": "x", "requestId": "b-0"},
                   service=ISSUANCE)
        self.assertNotEqual(r.code, "RESOURCE_EXHAUSTED", r)


class LimitsTest(SecurityTestCase):

    def test_request_size_limit(self):
        db = self.new_database("sizelimit")
        server = self.start_server(db.url, args=["--max_request_bytes=4096"])
        client = server.wait_ready()
        big = {"devices": [{"commId": f"imei-{i:06d}", "displayName": "x" * 200}
                           for i in range(40)]}
        r = client.call("BatchRegisterDevices", big)
        self.assertCode(r, "RESOURCE_EXHAUSTED", "a request over --max_request_bytes")
        self.assertEqual(db.query("SELECT count(*) FROM devices"), "0")
        self.ok(client.call("BatchRegisterDevices", {"devices": big["devices"][:5]}),
                "a request under the limit")


class AuthorizationMatrixTest(SecurityTestCase):
    """Every RPC of the API against every role and every kind of bad credential."""

    def test_matrix(self):
        table = role_table()
        methods = proto_methods()
        self.assertEqual(sorted(methods), sorted(table), "the role table and the .proto RPCs differ")

        # The API compiled once (buf curl --schema DIR would compile it on every call).
        schema = os.path.join(self.tmpdir, "api.binpb")
        run([BUF, "build", PROTO_DIR, "-o", schema])
        db, server, admin = self.serve_tls("matrix")
        cacert = admin.tls["cacert"]
        self.register_broker(admin, "broker-1")
        creds = {"admin": admin.tls}
        for role in ["provisioner", "viewer", "mqtt-client"]:
            creds[role] = self.issue(admin, f"{role}-1", role)
        creds["broker"] = self.issue(admin, "broker-1", "broker")
        creds["device"] = self.device_credential(admin, "imei-matrix")
        revoked = self.issue(admin, "admin-revoked", "admin")
        expired = self.issue(admin, "admin-expired", "admin", validity="1s")
        self.ok(admin.call("RevokeIdentity", {"name": "admin-revoked"}, service=IDENTITY))
        bad = {"no certificate": {"cacert": cacert},
               "foreign CA": self.foreign_credential(cacert),
               "revoked admin": revoked,
               "expired admin": expired}
        time.sleep(2)  # admin-expired's second is over

        before = self.snapshot(db)
        calls = []
        for method in methods:
            service, name = method.strip("/").split("/")
            for who, cred in list(creds.items()) + list(bad.items()):
                if who in creds and who in table[method]:
                    continue  # allowed calls come later: they may change things
                calls.append((method, who, service, name, cred))
        results = parallel([lambda s=s, n=n, c=c: admin.as_(c).call(
            n, {}, service=s, schema=schema, timeout=30) for _, _, s, n, c in calls], workers=4)
        for (method, who, *_), r in zip(calls, results):
            with self.subTest(method=method, caller=who):
                if who in bad:
                    self.assertEqual(r.code, "UNAUTHENTICATED", f"{who} calling {method}: {r!r}")
                else:
                    self.assertEqual(r.code, "PERMISSION_DENIED", f"{who} calling {method}: {r!r}")
                    self.assertIn(f"role {who}", r.message)
        self.assertEqual(self.snapshot(db), before, "a denied call changed the database")

        # Allowed calls pass authorization: whatever their handler answers to an empty
        # request (mostly INVALID_ARGUMENT; UNIMPLEMENTED for RPCs not built yet), it is not
        # a refusal by the table. Admin last: its calls may change the state others see.
        allowed = [(m, who) for m in methods for who in ROLES if who in table[m]]
        allowed.sort(key=lambda mw: mw[1] == "admin")
        results = parallel([lambda m=m, w=w: admin.as_(creds[w]).call(
            m.strip("/").split("/")[1], {}, service=m.strip("/").split("/")[0],
            schema=schema, timeout=30) for m, w in allowed], workers=4)
        for (method, who), r in zip(allowed, results):
            with self.subTest(method=method, caller=who):
                self.assertNotIn(r.code, ("UNAUTHENTICATED", "UNKNOWN", "INTERNAL"),
                                 f"{who} calling {method}: {r!r}")
                if r.code == "PERMISSION_DENIED":  # only a handler's "its own" narrowing
                    self.assertRegex(r.message, "only for itself|may read only",
                                     f"{who} calling {method}")


class AuditTamperTest(SecurityTestCase):

    def verify_audit(self, db):
        p = subprocess.run([SERVER, "verify-audit", f"--database_url={db.url}"],
                           capture_output=True, text=True, timeout=120)
        return p.returncode, p.stdout + p.stderr

    def test_edited_row_is_reported_by_verify_audit(self):
        db, server, admin = self.serve_tls("audit")
        for i in range(12):  # with init's entries, sequences well past 9
            self.ok(admin.call("RegisterDevice", {"device": {"commId": f"imei-{i}"}}))
        self.snapshot(db)  # waits for the chain
        code, out = self.verify_audit(db)
        self.assertEqual(code, 0, out)
        body = self.ok(admin.call("VerifyAuditChain", {}, service=AUDIT), "VerifyAuditChain")
        self.assertTrue(body["intact"], body)
        seq = db.query("SELECT chain_seq FROM audit_log WHERE target = 'imei-2'")
        db.query("UPDATE audit_log SET actor = 'someone-else' WHERE target = 'imei-2'")
        code, out = self.verify_audit(db)
        self.assertEqual(code, 3, out)
        self.assertIn(seq, out)
        body = self.ok(admin.call("VerifyAuditChain", {}, service=AUDIT), "VerifyAuditChain")
        self.assertFalse(body["intact"], body)
        self.assertEqual(body["firstBreakSequence"], seq, body)
        # The log holds no key material.
        self.assertEqual(db.query("SELECT count(*) FROM audit_log WHERE details::text "
                                  "LIKE '%PRIVATE KEY%'"), "0")


if __name__ == "__main__":
    unittest.main()
