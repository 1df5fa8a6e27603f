"""Revocation RPCs end to end: revoke, hold, release and status of real certificates, the
idempotent and refused cases (codes, the field named, nothing written), the audit and
change-log rows each change commits with, and a revoked device certificate refused by the
API at once (TLS)."""

import os
import secrets
import time
import unittest

from fleetca_e2e import PROTO_DIR
from test_issuance import ISSUANCE, IssuanceTestCase, Mosquitto, read, run, write
from test_security import SecurityTestCase

REVOCATION = "fleetca.v1.RevocationService"


class RevocationTest(IssuanceTestCase):

    def call(self, client, method, request):
        return client.call(method, request, service=REVOCATION)

    def state(self, db, serial):
        return db.query("SELECT c.status || ' ' || coalesce(r.reason::text, '-') FROM certificates c "
                        f"LEFT JOIN revocations r USING (serial) WHERE c.serial = decode('{serial}', 'hex')")

    def test_revoke_hold_release(self):
        db, server, client = self.serve("revoke")
        _, cert = self.new_device_cert(client, "imei-1")
        serial = cert["serial"]

        body = self.ok(self.call(client, "RevokeCertificate", {
            "serial": serial, "reason": "REVOCATION_REASON_KEY_COMPROMISE",
            "invalidityTime": "2026-01-01T00:00:00Z", "comment": "stolen"}), "RevokeCertificate")
        self.assertFalse(body["alreadyRevoked"])
        c = body["certificate"]
        self.assertEqual(c["status"], "CERTIFICATE_STATUS_REVOKED")
        self.assertEqual(c["revocation"]["reason"], "REVOCATION_REASON_KEY_COMPROMISE")
        self.assertEqual(c["revocation"]["invalidityTime"], "2026-01-01T00:00:00Z")
        self.assertEqual(c["revocation"]["comment"], "stolen")
        self.assertIn("BEGIN CERTIFICATE", c["certificatePem"])
        self.assertEqual(self.state(db, serial), "revoked 1")
        # Again, with another reason: nothing changes, the first reason stays.
        again = self.ok(self.call(client, "RevokeCertificate", {
            "serial": serial, "reason": "REVOCATION_REASON_SUPERSEDED"}))
        self.assertTrue(again["alreadyRevoked"])
        self.assertEqual(again["certificate"]["revocation"]["reason"],
                         "REVOCATION_REASON_KEY_COMPROMISE")
        # A revocation is final.
        for method in ("HoldCertificate", "ReleaseCertificateHold"):
            r = self.call(client, method, {"serial": serial})
            self.assertRefused(r, "FAILED_PRECONDITION", "serial", method)
        status = self.ok(self.call(client, "GetRevocationStatus", {"serial": serial}))
        self.assertEqual(status["status"], "CERTIFICATE_STATUS_REVOKED")
        self.assertEqual(status["revocation"]["reason"], "REVOCATION_REASON_KEY_COMPROMISE")
        by_fp = self.ok(self.call(client, "GetRevocationStatus",
                                  {"sha256Fingerprint": cert["sha256Fingerprint"]}))
        self.assertEqual(by_fp, status)

        # Hold, release, hold, revoke.
        _, cert2 = self.new_device_cert(client, "imei-2")
        s2 = cert2["serial"]
        held = self.ok(self.call(client, "HoldCertificate", {"serial": s2, "comment": "lost?"}))
        self.assertFalse(held["alreadyOnHold"])
        self.assertEqual(held["certificate"]["status"], "CERTIFICATE_STATUS_ON_HOLD")
        self.assertEqual(held["certificate"]["revocation"]["reason"],
                         "REVOCATION_REASON_CERTIFICATE_HOLD")
        self.assertTrue(self.ok(self.call(client, "HoldCertificate", {"serial": s2}))["alreadyOnHold"])
        released = self.ok(self.call(client, "ReleaseCertificateHold", {"serial": s2}))
        self.assertTrue(released["wasOnHold"])
        self.assertEqual(released["certificate"]["status"], "CERTIFICATE_STATUS_ACTIVE")
        self.assertNotIn("revocation", {k for k, v in released["certificate"].items() if v})
        self.assertFalse(self.ok(self.call(client, "ReleaseCertificateHold", {"serial": s2}))["wasOnHold"])
        self.assertEqual(self.state(db, s2), "issued -")
        self.ok(self.call(client, "HoldCertificate", {"serial": s2}))
        body = self.ok(self.call(client, "RevokeCertificate", {
            "serial": s2, "reason": "REVOCATION_REASON_CESSATION_OF_OPERATION"}))
        self.assertFalse(body["alreadyRevoked"])
        self.assertEqual(self.state(db, s2), "revoked 5")

        # Each change: one audit entry and one change-log revision, in its transaction.
        actions = db.query("SELECT string_agg(action, ',' ORDER BY id) FROM audit_log "
                           "WHERE details->>'resource' = 'revocation'")
        self.assertEqual(actions, "RevokeCertificate,HoldCertificate,ReleaseCertificateHold,"
                                  "HoldCertificate,RevokeCertificate")
        self.assertEqual(db.query("SELECT string_agg(op, ',' ORDER BY revision) FROM change_log "
                                  "WHERE entity_type = 'revocation'"),
                         "upsert,upsert,delete,upsert,upsert")
        self.assertEqual(db.query("SELECT count(*) FROM revocations r JOIN change_log l "
                                  "ON l.revision = r.revision AND l.entity_type = 'revocation'"), "2")

    def test_revoke_every_certificate_of_a_device(self):
        db, server, client = self.serve("revokedevice")
        _, first = self.new_device_cert(client, "imei-5")
        _, second = self.new_device_cert(client, "imei-5", register=False)
        _, other = self.new_device_cert(client, "imei-6")
        self.ok(self.call(client, "HoldCertificate", {"serial": second["serial"]}))
        body = self.ok(self.call(client, "RevokeDeviceCertificates", {
            "commId": "imei-5", "reason": "REVOCATION_REASON_PRIVILEGE_WITHDRAWN",
            "comment": "returned", "suspendDevice": True}), "RevokeDeviceCertificates")
        self.assertEqual(sorted(c["serial"] for c in body["revokedCertificates"]),
                         sorted([first["serial"], second["serial"]]))
        for c in body["revokedCertificates"]:
            self.assertEqual(c["status"], "CERTIFICATE_STATUS_REVOKED")
            self.assertEqual(c["certificatePem"], "")
        self.assertEqual(body["device"]["status"], "DEVICE_STATUS_SUSPENDED")
        self.assertEqual(body["device"]["statusReason"], "returned")
        self.assertEqual(self.state(db, first["serial"]), "revoked 9")
        self.assertEqual(self.state(db, second["serial"]), "revoked 9")
        self.assertEqual(self.state(db, other["serial"]), "issued -")
        # Idempotent: nothing live is left.
        again = self.ok(self.call(client, "RevokeDeviceCertificates", {"commId": "imei-5"}))
        self.assertEqual(again["revokedCertificates"], [])
        # One audit entry for the revocations, one for the suspension; one revision per
        # certificate; the device's own change-log entry.
        self.assertEqual(db.query("SELECT string_agg(action, ',' ORDER BY id) FROM audit_log "
                                  "WHERE action IN ('RevokeDeviceCertificates', 'SetDeviceStatus')"),
                         "RevokeDeviceCertificates,SetDeviceStatus")
        self.assertEqual(db.query("SELECT count(DISTINCT revision) FROM revocations r JOIN "
                                  "certificates c USING (serial) WHERE c.comm_id = 'imei-5'"), "1")
        # A suspended device gets no certificate.
        _, csr = self.pki.csr("imei-5-again", "/CN=imei-5")
        r = self.sign_call(client, "imei-5", csr)
        self.assertCode(r, "FAILED_PRECONDITION", "signing for a suspended device")
        for req, code, field in (({"commId": "nope"}, "NOT_FOUND", "comm_id"),
                                 ({"commId": "bad/id"}, "INVALID_ARGUMENT", "comm_id"),
                                 ({"commId": "imei-6", "reason": "REVOCATION_REASON_CERTIFICATE_HOLD"},
                                  "INVALID_ARGUMENT", "reason")):
            self.assertRefused(self.call(client, "RevokeDeviceCertificates", req), code, field, req)
        self.assertEqual(self.state(db, other["serial"]), "issued -")

    def wait_crl(self, client, issuer_id, entries, timeout=10, delta=False, base=None):
        """Polls GetCrl (PEM) until the issuer's CRL (its delta CRL on complete CRL `base`
        with delta) lists `entries` entries; returns it."""
        request = {"issuerId": issuer_id, "encoding": "CRL_ENCODING_PEM"}
        if delta:
            request["delta"] = True
        what = f"{'delta ' if delta else ''}CRL of {issuer_id}" + (f" on {base}" if delta else "")
        deadline = time.monotonic() + timeout
        while True:
            r = self.call(client, "GetCrl", request)
            if (r.code == "OK" and int(r.body.get("entryCount", 0)) == entries
                    and (not delta or int(r.body.get("baseCrlNumber", "0")) == int(base))):
                self.assertEqual(r.body.get("delta", False), delta, r.body)
                return r.body
            if r.code not in ("OK", "UNAVAILABLE"):
                self.assertCode(r, "OK", f"GetCrl {what}")
            self.assertLess(time.monotonic(), deadline,
                            f"no {what} with {entries} entries after {timeout}s: {r!r}")
            time.sleep(0.1)

    def test_crl_lists_a_revoked_certificate_and_openssl_refuses_it(self):
        db, server, client = self.serve("crl")
        key_bad, bad = self.new_device_cert(client, "imei-20")
        _, good = self.new_device_cert(client, "imei-21")
        first = self.wait_crl(client, "devices-1", 0)
        root_crl = self.wait_crl(client, "root-1", 0)
        self.ok(self.call(client, "RevokeCertificate", {
            "serial": bad["serial"], "reason": "REVOCATION_REASON_KEY_COMPROMISE"}))
        t0 = time.monotonic()
        crl = self.wait_crl(client, "devices-1", 1)
        latency = time.monotonic() - t0
        self.assertLess(latency, 5, "revocation to a published CRL")
        self.assertGreater(int(crl["crlNumber"]), int(first["crlNumber"]))
        pem = crl["crlPem"]
        self.assertTrue(pem.startswith("-----BEGIN X509 CRL-----"), pem[:40])
        # openssl: the CRL verifies with the devices CA and lists the serial with its reason.
        chain = bad["chainPem"]
        ca_file = self.pki.path("chain.pem")
        with open(ca_file, "w") as f:
            f.write(chain)
        crl_file = self.pki.path("devices.crl")
        with open(crl_file, "w") as f:
            f.write(pem + root_crl["crlPem"])
        text = run(["openssl", "crl", "-in", crl_file, "-CAfile", ca_file, "-noout", "-text"],
                   check=False)
        self.assertIn("verify OK", text.stdout + text.stderr)
        self.assertIn(f"Serial Number: {bad['serial'].upper()}", text.stdout)
        self.assertIn("Key Compromise", text.stdout)
        # openssl verify -crl_check_all with the served CRLs: the revoked one is refused,
        # the good one accepted.
        for cert, ok in ((bad, False), (good, True)):
            leaf = self.pki.path(f"{cert['serial']}.pem")
            with open(leaf, "w") as f:
                f.write(cert["certificatePem"])
            r = run(["openssl", "verify", "-crl_check_all", "-CAfile", ca_file, "-CRLfile",
                     crl_file, leaf], check=False)
            if ok:
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            else:
                self.assertNotEqual(r.returncode, 0, r.stdout)
                self.assertIn("certificate revoked", r.stdout + r.stderr)
        # The same CRL over plain HTTP, as brokers and openssl fetch it from the CDP URL.
        url = f"http://127.0.0.1:{server.http_port}/crl/devices-1.crl"
        run(["curl", "-sS", "-D", self.pki.path("headers"), "-o", self.pki.path("http.crl"), url])
        headers = read(self.pki.path("headers")).lower()
        self.assertIn("200", headers.splitlines()[0])
        self.assertIn("content-type: application/pkix-crl", headers)
        self.assertIn("cache-control: public, max-age=", headers)
        etag = [l.split(":", 1)[1].strip() for l in headers.splitlines() if l.startswith("etag:")][0]
        text = run(["openssl", "crl", "-inform", "DER", "-in", self.pki.path("http.crl"),
                    "-noout", "-text"]).stdout
        self.assertIn(f"Serial Number: {bad['serial'].upper()}", text)
        self.assertIn("Key Compromise", text)
        code = run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H",
                    f"If-None-Match: {etag}", url]).stdout
        self.assertEqual(code, "304")
        # The CA certificate from its AIA URL; unknown issuers are 404.
        run(["curl", "-sS", "-f", "-o", self.pki.path("ca.der"),
             f"http://127.0.0.1:{server.http_port}/ca/devices-1.crt"])
        subject = run(["openssl", "x509", "-inform", "DER", "-in", self.pki.path("ca.der"),
                       "-noout", "-subject"]).stdout
        self.assertIn("Devices CA", subject)
        for path in ("/crl/nope.crl", "/ca/nope.crt", "/crl/../etc/passwd", "/"):
            code = run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                        f"http://127.0.0.1:{server.http_port}{path}"]).stdout
            self.assertEqual(code, "404", path)
        # Not modified, and the refusals.
        again = self.ok(self.call(client, "GetCrl", {"issuerId": "devices-1",
                                                     "newerThanCrlNumber": crl["crlNumber"]}))
        self.assertTrue(again["notModified"])
        self.assertEqual(again["crlDer"], "")
        self.assertRefused(self.call(client, "GetCrl", {"issuerId": "nope"}), "NOT_FOUND", "issuer")
        self.assertRefused(self.call(client, "GetCrl", {}), "INVALID_ARGUMENT", "issuer_id")

    def test_crl_follows_holds_releases_and_revocations(self):
        """The builder applies each change to the entries it holds: a hold is listed as
        certificateHold, a release takes it out, a revocation lists it for good, and a
        restarted server (reading every entry again) lists the same."""
        db, server, client = self.serve("crlchanges")
        _, a = self.new_device_cert(client, "imei-40")
        _, b = self.new_device_cert(client, "imei-41")

        def listed(crl):
            pem = self.pki.path("changes.crl")
            with open(pem, "w") as f:
                f.write(crl["crlPem"])
            text = run(["openssl", "crl", "-in", pem, "-noout", "-text"]).stdout
            return text

        self.ok(self.call(client, "HoldCertificate", {"serial": a["serial"]}))
        text = listed(self.wait_crl(client, "devices-1", 1))
        self.assertIn(f"Serial Number: {a['serial'].upper()}", text)
        self.assertIn("Certificate Hold", text)
        self.ok(self.call(client, "ReleaseCertificateHold", {"serial": a["serial"]}))
        self.assertNotIn(a["serial"].upper(), listed(self.wait_crl(client, "devices-1", 0)))
        self.ok(self.call(client, "RevokeCertificate",
                          {"serial": b["serial"], "reason": "REVOCATION_REASON_SUPERSEDED"}))
        self.ok(self.call(client, "HoldCertificate", {"serial": a["serial"]}))
        self.ok(self.call(client, "RevokeCertificate",
                          {"serial": a["serial"], "reason": "REVOCATION_REASON_KEY_COMPROMISE"}))
        # (A CRL of the hold may come between: wait for the one of the revocation.)
        deadline = time.monotonic() + 10
        while True:
            crl = self.wait_crl(client, "devices-1", 2)
            text = listed(crl)
            if "Certificate Hold" not in text:
                break
            self.assertLess(time.monotonic(), deadline, text)
            time.sleep(0.1)
        self.assertIn("Key Compromise", text)
        self.assertIn("Superseded", text)
        # GetRevocationStatus names the first stored CRL that lists the revocation.
        deadline = time.monotonic() + 10
        while True:
            status = self.ok(self.call(client, "GetRevocationStatus", {"serial": a["serial"]}))
            if int(status.get("publishedCrlNumber", "0")) > 0:
                break
            self.assertLess(time.monotonic(), deadline, status)
            time.sleep(0.1)
        # Restarted: the first round reads every entry; the same two are listed.
        server.stop()
        client2 = self.start_server(db.url).wait_ready()
        _, c = self.new_device_cert(client2, "imei-42")
        self.ok(self.call(client2, "HoldCertificate", {"serial": c["serial"]}))
        text = listed(self.wait_crl(client2, "devices-1", 3))
        self.assertIn(c["serial"].upper(), text)
        self.assertIn(a["serial"].upper(), text)
        self.assertIn(b["serial"].upper(), text)

    def test_delta_crls_carry_the_changes_since_the_complete_crl(self):
        """Complete CRLs at most hourly: revocations and releases reach clients through the
        delta CRL, which OpenSSL applies to the complete one (-use_deltas); a restarted
        server issues a new complete CRL; with --crl_deltas=false there are no deltas."""
        args = ["--crl_complete_min_interval=1h"]
        db, server, client = self.serve("deltacrl", args=args)
        _, early = self.new_device_cert(client, "imei-50")  # revoked before the complete CRL
        _, late = self.new_device_cert(client, "imei-51")   # revoked after it
        _, held = self.new_device_cert(client, "imei-52")   # held before it, released after
        _, good = self.new_device_cert(client, "imei-53")
        first = self.wait_crl(client, "devices-1", 0)
        self.ok(self.call(client, "RevokeCertificate", {
            "serial": early["serial"], "reason": "REVOCATION_REASON_KEY_COMPROMISE"}))
        self.ok(self.call(client, "HoldCertificate", {"serial": held["serial"]}))
        # The complete CRL stays (an hour); its delta lists both.
        self.wait_crl(client, "devices-1", 2, delta=True, base=first["crlNumber"])
        self.assertEqual(self.wait_crl(client, "devices-1", 0)["crlNumber"], first["crlNumber"])

        # Restarted, the builder reads every entry and issues a complete CRL with both.
        server.stop()
        server = self.start_server(db.url, args=args)
        client = server.wait_ready()
        complete = self.wait_crl(client, "devices-1", 2)
        self.assertGreater(int(complete["crlNumber"]), int(first["crlNumber"]))
        self.ok(self.call(client, "RevokeCertificate", {
            "serial": late["serial"], "reason": "REVOCATION_REASON_KEY_COMPROMISE"}))
        self.ok(self.call(client, "ReleaseCertificateHold", {"serial": held["serial"]}))
        delta = self.wait_crl(client, "devices-1", 2, delta=True, base=complete["crlNumber"])
        self.assertGreater(int(delta["crlNumber"]), int(complete["crlNumber"]))
        self.assertEqual(int(self.wait_crl(client, "devices-1", 2)["crlNumber"]),
                         int(complete["crlNumber"]))

        complete_file = write(self.pki.path("complete.crl"), complete["crlPem"])
        delta_file = write(self.pki.path("delta.crl"), delta["crlPem"])
        text = run(["openssl", "crl", "-in", complete_file, "-noout", "-text"]).stdout
        self.assertIn("X509v3 Freshest CRL", text)
        self.assertIn("/crl/delta/devices-1.crl", text)
        text = run(["openssl", "crl", "-in", delta_file, "-noout", "-text"]).stdout
        self.assertIn("X509v3 Delta CRL Indicator: critical", text)
        self.assertIn(f"Serial Number: {late['serial'].upper()}", text)
        self.assertIn(f"Serial Number: {held['serial'].upper()}", text)
        self.assertIn("Remove From CRL", text)
        self.assertNotIn(early["serial"].upper(), text)
        # OpenSSL's verifier with both: the two revoked are refused, the released hold and
        # the good one accepted; with the complete CRL alone, the late revocation is missed
        # and the hold still counts.
        ca_file = write(self.pki.path("chain.pem"), good["chainPem"])
        for cert, with_delta, ok in ((early, True, False), (late, True, False), (held, True, True),
                                     (good, True, True), (late, False, True), (held, False, False)):
            leaf = write(self.pki.path(f"{cert['serial']}.pem"), cert["certificatePem"])
            crls = ["-CRLfile", complete_file] + (["-CRLfile", delta_file] if with_delta else [])
            r = run(["openssl", "verify", "-crl_check", "-extended_crl", "-use_deltas",
                     "-CAfile", ca_file, *crls, leaf], check=False)
            context = f"{cert['serial']} with_delta={with_delta}: {r.stdout}{r.stderr}"
            if ok:
                self.assertEqual(r.returncode, 0, context)
            else:
                self.assertNotEqual(r.returncode, 0, context)
                self.assertIn("certificate revoked", r.stdout + r.stderr, context)
        # The delta over HTTP, at the URL the complete CRL names.
        http_delta = self.pki.path("http-delta.crl")
        run(["curl", "-sS", "-f", "-o", http_delta,
             f"http://127.0.0.1:{server.http_port}/crl/delta/devices-1.crl"])
        number = run(["openssl", "crl", "-inform", "DER", "-in", http_delta, "-noout",
                      "-crlnumber"]).stdout
        self.assertEqual(int(number.strip().split("=")[1], 16), int(delta["crlNumber"]), number)
        # GetRevocationStatus names a published CRL reflecting the late revocation: the delta.
        deadline = time.monotonic() + 10
        while True:
            status = self.ok(self.call(client, "GetRevocationStatus", {"serial": late["serial"]}))
            if int(status.get("publishedCrlNumber", "0")) > 0:
                break
            self.assertLess(time.monotonic(), deadline, status)
            time.sleep(0.1)
        self.assertGreater(int(status["publishedCrlNumber"]), int(complete["crlNumber"]))

        # Delta CRLs off: refused over gRPC and HTTP; each change makes a complete CRL,
        # which names no deltas.
        server.stop()
        server = self.start_server(db.url, args=["--crl_deltas=false"])
        client = server.wait_ready()
        self.assertRefused(self.call(client, "GetCrl", {"issuerId": "devices-1", "delta": True}),
                           "FAILED_PRECONDITION", "delta")
        code = run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                    f"http://127.0.0.1:{server.http_port}/crl/delta/devices-1.crl"]).stdout
        self.assertEqual(code, "404")
        self.ok(self.call(client, "HoldCertificate", {"serial": good["serial"]}))
        crl = self.wait_crl(client, "devices-1", 3)
        text = run(["openssl", "crl", "-in", write(self.pki.path("nodelta.crl"), crl["crlPem"]),
                    "-noout", "-text"]).stdout
        self.assertNotIn("Freshest CRL", text)
        for cert in (early, late, good):
            self.assertIn(cert["serial"].upper(), text)

    def test_mosquitto_with_the_served_crl_refuses_a_revoked_device(self):
        db, server, client = self.serve("mosquittocrl")
        key_path, cert = self.new_device_cert(client, "imei-30")
        good_key, good = self.new_device_cert(client, "imei-31")
        good_path = write(self.pki.path("imei-31.crt"), good["certificatePem"])
        self.register_broker(client, "mqtt-crl", dns=["localhost"], ips=["127.0.0.1"])
        broker_key, broker_csr = self.pki.csr("broker", "/CN=localhost")
        broker = self.ok(self.sign_broker(client, "mqtt-crl", broker_csr))["certificate"]
        clients = self.trust_bundle(client, "TRUST_BUNDLE_SCOPE_CLIENT_AUTH")["bundlePem"]
        servers = write(self.pki.path("server-ca.pem"),
                        self.trust_bundle(client, "TRUST_BUNDLE_SCOPE_SERVER_AUTH")["bundlePem"])
        crl_url = f"http://127.0.0.1:{server.http_port}/crl/devices-1.crl"

        def served_crl_pem(entries):
            self.wait_crl(client, "devices-1", entries)
            der = self.pki.path("served.crl")
            run(["curl", "-sS", "-f", "-o", der, crl_url])
            return run(["openssl", "crl", "-inform", "DER", "-in", der]).stdout

        mosq = Mosquitto(os.path.join(self.tmpdir, "mosquitto"), clients,
                         broker["certificatePem"] + broker["chainPem"], broker_key,
                         crl_pem=served_crl_pem(0))
        self.addCleanup(mosq.close)
        cert_path = write(self.pki.path("imei-30.crt"), cert["certificatePem"])
        r = mosq.publish("localhost", servers, cert_path, key_path, "imei-30")
        self.assertEqual(r.returncode, 0, f"before the revocation:\n{r.stdout}{r.stderr}\n"
                                          f"{mosq.log_text()}")
        self.ok(self.call(client, "RevokeCertificate", {
            "serial": cert["serial"], "reason": "REVOCATION_REASON_KEY_COMPROMISE"}))
        mosq.reload_crl(served_crl_pem(1))
        deadline = time.monotonic() + 20
        # SIGHUP is asynchronous: the reload may take a moment, and a connection made while
        # it happens may fail for that reason alone. Done when a publish fails and mosquitto
        # says why: the certificate did not verify (its log line may trail the failure).
        while True:
            r = mosq.publish("localhost", servers, cert_path, key_path, "imei-30")
            if r.returncode != 0 and "certificate verify failed" in mosq.log_text():
                break
            self.assertLess(time.monotonic(), deadline,
                            "mosquitto does not refuse the revoked device's certificate:\n"
                            + mosq.log_text())
            time.sleep(0.5)
        # Another device of the same CA still connects: the CRL, not the reload, refused it.
        r = mosq.publish("localhost", servers, good_path, good_key, "imei-31")
        self.assertEqual(r.returncode, 0, f"a good device after the reload:\n{r.stdout}{r.stderr}")

    def test_a_held_identity_certificate_takes_the_identity_revocation(self):
        db, server, client = self.serve("identityhold")
        body = self.ok(client.call("IssueIdentity", {
            "name": "viewer-9", "role": "IDENTITY_ROLE_VIEWER",
            "generateKeyAlgorithm": "KEY_ALGORITHM_ECDSA_P256"},
            service="fleetca.v1.IdentityService"))
        serial = body["certificate"]["serial"]
        self.ok(self.call(client, "HoldCertificate", {"serial": serial}))
        self.assertEqual(self.state(db, serial), "on_hold 6")
        self.ok(client.call("RevokeIdentity", {"name": "viewer-9",
                                               "reason": "REVOCATION_REASON_KEY_COMPROMISE"},
                            service="fleetca.v1.IdentityService"))
        self.assertEqual(self.state(db, serial), "revoked 1")
        self.assertEqual(db.query("SELECT count(*) FROM revocations r JOIN change_log l ON "
                                  "l.revision = r.revision AND l.entity_type = 'revocation' "
                                  f"WHERE r.serial = decode('{serial}', 'hex')"), "1")

    def test_bad_input_writes_nothing(self):
        db, server, client = self.serve("revokebad")
        _, cert = self.new_device_cert(client, "imei-3")
        serial = cert["serial"]
        future = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        cases = [
            ("RevokeCertificate", {}, "INVALID_ARGUMENT", "serial"),
            ("RevokeCertificate", {"serial": "xyz"}, "INVALID_ARGUMENT", "serial"),
            ("RevokeCertificate", {"serial": "00" * 21}, "INVALID_ARGUMENT", "serial"),
            ("RevokeCertificate", {"serial": secrets.token_hex(16)}, "NOT_FOUND", "serial"),
            ("RevokeCertificate", {"serial": serial, "issuerId": "brokers-1"}, "NOT_FOUND", "serial"),
            ("RevokeCertificate", {"serial": serial, "reason": "REVOCATION_REASON_CERTIFICATE_HOLD"},
             "INVALID_ARGUMENT", "reason"),
            ("RevokeCertificate", {"serial": serial, "reason": "REVOCATION_REASON_REMOVE_FROM_CRL"},
             "INVALID_ARGUMENT", "reason"),
            ("RevokeCertificate", {"serial": serial, "reason": "REVOCATION_REASON_CA_COMPROMISE"},
             "INVALID_ARGUMENT", "reason"),
            ("RevokeCertificate", {"serial": serial, "invalidityTime": future},
             "INVALID_ARGUMENT", "invalidity_time"),
            ("RevokeCertificate", {"serial": serial, "comment": "x" * 257}, "INVALID_ARGUMENT", "comment"),
            ("HoldCertificate", {"serial": serial, "comment": "a\u0001b"}, "INVALID_ARGUMENT", "comment"),
            ("HoldCertificate", {"serial": secrets.token_hex(8)}, "NOT_FOUND", "serial"),
            ("ReleaseCertificateHold", {"serial": ""}, "INVALID_ARGUMENT", "serial"),
            ("GetRevocationStatus", {"serial": secrets.token_hex(8)}, "NOT_FOUND", "serial"),
            ("GetRevocationStatus", {"sha256Fingerprint": "ab"}, "INVALID_ARGUMENT", "sha256_fingerprint"),
        ]
        audit_before = db.query("SELECT count(*) FROM audit_log")
        for method, req, code, field in cases:
            with self.subTest(method=method, request=req):
                self.assertRefused(self.call(client, method, req), code, field, f"{method} {req}")
        self.assertEqual(db.query("SELECT count(*) FROM revocations"), "0")
        self.assertEqual(db.query("SELECT count(*) FROM change_log WHERE entity_type = 'revocation'"), "0")
        self.assertEqual(db.query("SELECT count(*) FROM audit_log"), audit_before)
        self.assertEqual(self.state(db, serial), "issued -")


class RevokedDeviceRefusedTest(SecurityTestCase):

    def test_a_revoked_device_certificate_is_refused_at_once(self):
        db, server, admin = self.serve_tls("revokeddevice")
        dev_tls = self.device_credential(admin, "imei-9")
        dev = admin.as_(dev_tls)
        serial = self.ok(admin.call("ListCertificates", {"commId": "imei-9"},
                                    service=ISSUANCE))["certificates"][0]["serial"]
        status = self.ok(dev.call("GetRevocationStatus", {"serial": serial}, service=REVOCATION))
        self.assertEqual(status["status"], "CERTIFICATE_STATUS_ACTIVE")
        self.ok(admin.call("RevokeCertificate", {"serial": serial,
                                                 "reason": "REVOCATION_REASON_KEY_COMPROMISE"},
                           service=REVOCATION))
        r = dev.call("GetRevocationStatus", {"serial": serial}, service=REVOCATION,
                     schema=PROTO_DIR)
        self.assertCode(r, "UNAUTHENTICATED", "a revoked device certificate")
        self.assertIn("is revoked", r.message)

    def test_other_replicas_learn_of_a_revocation_within_seconds(self):
        db, server, admin = self.serve_tls("replicas")
        os.makedirs(os.path.join(self.tmpdir, "b"))
        other = self.start_server(db.url, name="replica-b", tls=admin.tls,
                                  args=[f"--tls_dir={self.tmpdir}/b"])
        admin_b = other.wait_ready()
        dev_tls = self.device_credential(admin, "imei-10")
        serial = self.ok(admin.call("ListCertificates", {"commId": "imei-10"},
                                    service=ISSUANCE))["certificates"][0]["serial"]
        dev_b = admin_b.as_(dev_tls)
        self.ok(dev_b.call("GetRevocationStatus", {"serial": serial}, service=REVOCATION),
                "the device on replica b before")
        self.ok(admin.call("RevokeCertificate", {"serial": serial}, service=REVOCATION))
        revoked_at = time.monotonic()
        while True:
            r = dev_b.call("GetRevocationStatus", {"serial": serial}, service=REVOCATION,
                           schema=PROTO_DIR)
            if r.code == "UNAUTHENTICATED":
                break
            self.assertCode(r, "OK", "the device on replica b, not yet refused")
            self.assertLess(time.monotonic() - revoked_at, 10, "replica b still accepts it")
            time.sleep(0.2)
        self.assertIn("is revoked", r.message)


if __name__ == "__main__":
    unittest.main()
