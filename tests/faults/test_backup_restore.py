"""Backup and restore (docs/operations.md "Backup and restore", docs/reliability.md): the
documented procedure, run as written while the service takes writes (fault_load: issuing and
revoking clients), then checked on a fresh database:

  - pg_dump --format=custom while the load runs; `fleetca-server verify-audit` before it,
    its anchor noted;
  - createdb + pg_restore --no-owner into a fresh database; `verify-audit --anchor=` there;
  - a server on the restored database with the same KEK (and a TLS directory of its own);
  - the same registry (every device of the dump equal, field by field, to the original's),
    the same certificates (DER), every certificate and revocation acknowledged before the
    dump began present; the same CRLs: for every issuer the restored service serves a CRL
    that verifies, whose number continues the original's numbering (never lower than the
    dump's newest), whose entries are exactly the restored revocations, each entry (serial,
    date, reason) as the original lists it;
  - its audit chain verifies (VerifyAuditChain and verify-audit);
  - issuance and revocation work on it, and its next CRL lists the new revocation.

And, with the service idle (no writes between the dump and the comparison), the strongest
form of "the same CRLs": the restored service serves each issuer's CRL with the same number
and the same DER as the original.
"""

import os
import re
import subprocess
import time
import unittest

from faultlib import (SERVER, SERVER_ARGS, Load, TestDatabase, crl_entries, crl_number,
                      crl_text, http_get, log, pem_to_der, pg_bindir, serial_int)
from test_security import SecurityTestCase

CA = "fleetca.v1.CertificateAuthorityService"
AUDIT = "fleetca.v1.AuditService"
REVOCATION = "fleetca.v1.RevocationService"
ISSUERS = ["root-1", "devices-1", "brokers-1", "operators-1"]


def run(cmd, timeout=300):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout + r.stderr


class BackupRestoreTest(SecurityTestCase):

    def verify_audit(self, url, anchor=None):
        cmd = [SERVER, "verify-audit", f"--database_url={url}"]
        if anchor:
            cmd.append(f"--anchor={anchor}")
        code, out = run(cmd)
        self.assertEqual(code, 0, f"verify-audit {anchor or ''}: {out}")
        m = re.search(r"anchor for a later verification: (\d+:[0-9a-f]+)", out)
        self.assertIsNotNone(m, out)
        return m.group(1)

    def dump(self, db, name):
        path = os.path.join(self.tmpdir, name)
        t0 = time.monotonic()
        code, out = run([os.path.join(pg_bindir(), "pg_dump"), "--format=custom", "--no-owner",
                         f"--file={path}", db.url])
        self.assertEqual(code, 0, f"pg_dump: {out}")
        return path, time.monotonic() - t0

    def restore(self, path, label):
        restored = TestDatabase(label)  # CREATE DATABASE: a fresh, empty database
        self.resources.append(restored)
        t0 = time.monotonic()
        code, out = run([os.path.join(pg_bindir(), "pg_restore"), "--no-owner",
                         f"--dbname={restored.url}", path])
        self.assertEqual(code, 0, f"pg_restore: {out}")
        return restored, time.monotonic() - t0

    def serve_restored(self, restored, name):
        tls_dir = os.path.join(self.tmpdir, name + "-tls")
        os.makedirs(tls_dir, exist_ok=True)
        tls = self.admin.tls  # the same CAs (restored): the same admin credential and bundle
        server = self.start_server(restored.url, tls=tls, name=name,
                                   args=[f"--tls_dir={tls_dir}", *SERVER_ARGS])
        return server, server.wait_ready()

    def devices(self, client):
        out, token = {}, ""
        while True:
            body = self.ok(client.call("ListDevices", {"pageSize": 1000, "pageToken": token}))
            for d in body.get("devices", []):
                out[d["commId"]] = d
            token = body.get("nextPageToken", "")
            if not token:
                return out

    def certificates(self, db):
        rows = db.query("SELECT encode(serial, 'hex'), encode(der, 'hex'), status "
                        "FROM certificates ORDER BY 1")
        return {serial_int(l.split("|")[0]): tuple(l.split("|")[1:])
                for l in rows.split("\n")} if rows else {}

    def revocations(self, db, issuer):
        rows = db.query(f"SELECT encode(serial, 'hex') FROM revocations WHERE issuer_id = '{issuer}'")
        return {serial_int(s) for s in rows.split()} if rows else set()

    def newest_crl_number(self, db, issuer):
        n = db.query(f"SELECT coalesce(max(crl_number), 0) FROM crls WHERE issuer_id = '{issuer}' "
                     "AND base_crl_number IS NULL")
        return int(n)

    def issuer_chain(self, client, issuer):
        """A file with the issuer's certificate and its parents' (to verify its CRLs)."""
        pems, current = [], issuer
        while current:
            body = self.ok(client.call("GetIssuer", {"issuerId": current}, service=CA))["issuer"]
            pems.append(body["certificatePem"])
            parent = body.get("parentIssuerId", "")
            current = parent if parent != current else ""
        path = os.path.join(self.tmpdir, f"chain-{issuer}.pem")
        with open(path, "w") as f:
            f.write("".join(pems))
        return path

    def served_crl(self, server, client, issuer, want=lambda text: True, timeout=90):
        """The complete CRL served over HTTP, once it verifies and `want` accepts it:
        (DER, text)."""
        cafile = self.issuer_chain(client, issuer)
        deadline = time.monotonic() + timeout
        while True:
            status, der = http_get(server.http_port, f"/crl/{issuer}.crl")
            if status == 200:
                text, verified = crl_text(der, cafile)
                if verified and want(text):
                    return der, text
            self.assertLess(time.monotonic(), deadline,
                            f"{issuer}: no acceptable CRL within {timeout}s (HTTP {status})")
            time.sleep(0.3)

    def test_dump_while_serving_restore_and_compare(self):
        self.db, self.server, self.admin = self.serve_tls("backup", args=SERVER_ARGS)
        original, admin = self.server, self.admin
        load = Load(original.port, admin.tls, os.path.join(self.tmpdir, "load"), clients=8,
                    revokers=1)
        self.addCleanup(load.close)
        load.wait_certificates(150, timeout=180)
        load.wait_revocations(15, timeout=120)

        # The procedure, as documented: verify-audit (note its anchor), then pg_dump, while
        # the clients go on issuing and revoking.
        anchor = self.verify_audit(self.db.url)
        dump_started = time.time()
        dump, dump_seconds = self.dump(self.db, "online.dump")
        dump_ended = time.time()
        late_anchor = self.verify_audit(self.db.url)  # noted after the dump: too late
        log(f"pg_dump under load: {dump_seconds:.1f}s")
        load.wait_certificates(50, timeout=120, after=dump_ended)
        load.wait_revocations(5, timeout=120, after=dump_ended)
        summary = load.stop()
        self.assertEqual(summary["given_up"] + summary["refused"], 0, summary)

        restored, restore_seconds = self.restore(dump, "restored")
        self.verify_audit(restored.url, anchor)  # the chain up to the backup is intact
        # An anchor noted after pg_dump may name an entry the dump does not hold: then the
        # restored chain cannot be checked against it (why the procedure notes it before).
        chained = int(restored.query("SELECT coalesce(max(chain_seq), 0) FROM audit_log"))
        if int(late_anchor.split(":")[0]) > chained:
            code, out = run([SERVER, "verify-audit", f"--database_url={restored.url}",
                             f"--anchor={late_anchor}"])
            log(f"verify-audit with an anchor noted after the dump: exit {code}: {out.strip()}")
            self.assertNotEqual(code, 0, out)
        # What the dump holds, read before a server starts on it (which issues itself a TLS
        # server certificate when its TLS directory has none).
        certs_rest = self.certificates(restored)
        server2, client2 = self.serve_restored(restored, "restored")

        # The registry: every device of the dump equal to the original's; every device
        # whose certificate was received before the dump began is there.
        before = [c for c in load.certificates() if c["t_ok"] < dump_started]
        after = [c for c in load.certificates() if c["t_first"] > dump_ended]
        devices_orig, devices_rest = self.devices(admin), self.devices(client2)
        self.assertLessEqual(set(devices_rest), set(devices_orig))
        self.assertEqual({k: devices_orig[k] for k in devices_rest}, devices_rest)
        self.assertLessEqual({c["comm_id"] for c in before}, set(devices_rest))
        self.assertFalse({c["comm_id"] for c in after} & set(devices_rest),
                         "a device registered after the dump ended is in it")

        # The certificates: the dump's are the original's, byte for byte.
        certs_orig = self.certificates(self.db)
        for serial, (der, status) in certs_rest.items():
            self.assertEqual(certs_orig[serial][0], der, f"serial {serial:x}: another DER")
        for c in before:
            self.assertIn(serial_int(c["serial"]), certs_rest)
            self.assertEqual(pem_to_der(c["pem"]).hex(), certs_rest[serial_int(c["serial"])][0])

        # The CRLs.
        revoked_before = {serial_int(r["serial"]) for r in load.revocations()
                          if r["t_ok"] < dump_started}
        figures = {"certificates": len(load.certificates()), "in_dump": len(certs_rest),
                   "revocations": len(load.revocations()),
                   "dump_seconds": round(dump_seconds, 1),
                   "restore_seconds": round(restore_seconds, 1)}
        for issuer in ISSUERS:
            expected = self.revocations(restored, issuer)
            dumped_number = self.newest_crl_number(restored, issuer)
            der_o, text_o = self.served_crl(original, admin, issuer,
                                            lambda t: self.revocations(self.db, issuer)
                                            <= set(crl_entries(t)))
            der_r, text_r = self.served_crl(server2, client2, issuer,
                                            lambda t: set(crl_entries(t)) == expected)
            entries_o, entries_r = crl_entries(text_o), crl_entries(text_r)
            self.assertEqual(set(entries_r), expected, issuer)
            self.assertEqual({s: entries_o[s] for s in entries_r}, entries_r,
                             f"{issuer}: the restored CRL's entries differ from the original's")
            if issuer == "devices-1":
                self.assertLessEqual(revoked_before, set(entries_r),
                                     "revocations acknowledged before the dump are missing")
                figures["crl_entries_restored"] = len(entries_r)
            self.assertGreaterEqual(crl_number(text_r), dumped_number,
                                    f"{issuer}: the restored CRL number goes back")

        # The audit chain, over the API.
        body = self.ok(client2.call("VerifyAuditChain", {}, service=AUDIT))
        self.assertTrue(body["intact"], body)

        # Issuance and revocation on the restored service; its next CRL lists the new one
        # with a higher number.
        number_before = crl_number(self.served_crl(server2, client2, "devices-1")[1])
        key_path, cert = self.new_device_cert(client2, "after-restore")
        self.assertVerifies(cert["certificatePem"], cert["chainPem"], context="after restore")
        self.assertNotIn(serial_int(cert["serial"]), certs_orig)
        self.ok(client2.call("RevokeCertificate", {"serial": cert["serial"],
                                                   "reason": "REVOCATION_REASON_SUPERSEDED"},
                             service=REVOCATION))
        _, text = self.served_crl(server2, client2, "devices-1",
                                  lambda t: serial_int(cert["serial"]) in crl_entries(t))
        self.assertGreater(crl_number(text), number_before)
        self.verify_audit(restored.url, anchor)

        # Idle: a dump of a service that takes no writes, restored, serves each issuer's CRL
        # with the same number and DER.
        self.assertEqual(server2.stop(), 0)
        idle = {}
        for issuer in ISSUERS:
            idle[issuer] = self.served_crl(original, admin, issuer,
                                           lambda t, i=issuer: set(crl_entries(t)) ==
                                           self.revocations(self.db, i))
        time.sleep(2)  # the CRL store thread writes the DER of the newest CRL
        dump2, _ = self.dump(self.db, "idle.dump")
        restored2, _ = self.restore(dump2, "restored_idle")
        server3, client3 = self.serve_restored(restored2, "restored-idle")
        same = {}
        for issuer in ISSUERS:
            der_o, text_o = idle[issuer]
            der_r, text_r = self.served_crl(server3, client3, issuer)
            same[issuer] = (crl_number(text_o), crl_number(text_r), der_o == der_r)
        log(f"idle dump: CRL numbers and DER equality by issuer: {same}")
        for issuer, (n_o, n_r, equal) in same.items():
            self.assertEqual((n_r, equal), (n_o, True),
                             f"{issuer}: the restored service serves another CRL")
        figures["idle_crls_same"] = same
        print(f"\nFIGURES backup-restore {figures}", flush=True)


if __name__ == "__main__":
    unittest.main()
