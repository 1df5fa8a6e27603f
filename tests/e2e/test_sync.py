"""BrokerSyncService.Watch as a broker (or an operator with a reflection client) sees it:
a snapshot, then the deltas as changes commit, heartbeats, resuming from a revision, and the
refusals."""

import time

from test_issuance import BROKERS, IssuanceTestCase

ACL = "fleetca.v1.AclService"
REVOCATION = "fleetca.v1.RevocationService"


def kind_of(change):
    for k in ("issuer", "crl", "device", "identity", "certificate", "aclProfile",
              "aclAssignment"):
        if k in change:
            return k
    raise AssertionError(f"a change without an object: {change}")


def changes_of(messages):
    out = []
    for m in messages:
        out.extend(m.get("changes", {}).get("changes", []))
    return out


class SyncTest(IssuanceTestCase):

    def watch(self, client, broker_id, since=0, heartbeat="2s", types=None):
        request = {"brokerId": broker_id, "sinceRevision": str(since),
                   "heartbeatInterval": heartbeat}
        if types:
            request["objectTypes"] = types
        stream = client.stream("Watch", request, BROKERS)
        self.addCleanup(stream.close)
        return stream

    def snapshot(self, stream, reason="SNAPSHOT_REASON_REQUESTED"):
        """Reads a whole snapshot: (revision, its objects by kind and key)."""
        first = stream.next()
        self.assertIn("snapshotBegin", first, first)
        self.assertEqual(first["snapshotBegin"]["reason"], reason)
        revision = int(first["snapshotBegin"]["revision"])
        messages = stream.until(lambda m: "snapshotEnd" in m, what="snapshot_end")
        objects = changes_of(messages)
        end = messages[-1]["snapshotEnd"]
        self.assertEqual(int(end["revision"]), revision)
        self.assertEqual(int(end["objectCount"]), len(objects))
        for m in messages[:-1]:
            self.assertEqual(int(m["changes"]["revision"]), revision, m)
        by_kind = {}
        for c in objects:
            self.assertFalse(c["deleted"], c)
            by_kind.setdefault(kind_of(c), []).append(c[kind_of(c)])
        return revision, by_kind

    def delta(self, stream, predicate, what):
        """The changes message holding the first change predicate accepts: (message, change)."""
        messages = stream.until(
            lambda m: any(predicate(c) for c in m.get("changes", {}).get("changes", [])),
            what=what)
        for m in messages:
            self.assertNotIn("snapshotBegin", m, "an unexpected snapshot")
        m = messages[-1]["changes"]
        return m, next(c for c in m["changes"] if predicate(c))

    def test_snapshot_then_deltas_heartbeats_and_resume(self):
        db, server, client = self.serve("sync")
        self.register_broker(client, "mqtt-1")
        self.ok(client.call("RegisterDevice", {"device": {
            "commId": "imei-1", "groups": ["line-a"], "attributes": {"site": "lyon"}}}))
        self.register(client, "imei-2", status="DEVICE_STATUS_SUSPENDED")
        _, cert = self.new_device_cert(client, "imei-3")

        stream = self.watch(client, "mqtt-1")
        revision, objects = self.snapshot(stream)
        head = int(db.query("SELECT max(revision) FROM change_log"))
        self.assertLessEqual(revision, head)  # (a CRL issued meanwhile is a later change)
        self.assertGreaterEqual(revision, int(db.query(
            "SELECT max(revision) FROM change_log WHERE entity_type <> 'crl'")))
        # Issuers brokers trust, with their PEM; no CRL yet is fine, but every other kind is.
        purposes = sorted(i["purpose"] for i in objects["issuer"])
        self.assertEqual(purposes, sorted(["ISSUER_PURPOSE_ROOT", "ISSUER_PURPOSE_DEVICES",
                                           "ISSUER_PURPOSE_BROKERS", "ISSUER_PURPOSE_OPERATORS"]))
        for i in objects["issuer"]:
            self.assertIn("BEGIN CERTIFICATE", i["certificatePem"])
            self.assertEqual(len(i["sha256Fingerprint"]), 64)
        devices = {d["commId"]: d for d in objects["device"]}
        self.assertEqual(sorted(devices), ["imei-1", "imei-2", "imei-3"])
        self.assertEqual(devices["imei-1"]["groups"], ["line-a"])
        self.assertEqual(devices["imei-1"]["attributes"], {"site": "lyon"})
        self.assertEqual(devices["imei-2"]["status"], "DEVICE_STATUS_SUSPENDED")
        self.assertEqual(sorted(p["name"] for p in objects["aclProfile"]),
                         ["controller", "device", "watcher"])
        self.assertIn({"subjectType": "ACL_SUBJECT_TYPE_ALL_DEVICES", "subjectId": "",
                       "profileName": "device"},
                      [{k: a[k] for k in ("subjectType", "subjectId", "profileName")}
                       for a in objects["aclAssignment"]])
        certs = {c["serial"]: c for c in objects["certificate"]}
        self.assertEqual(certs[cert["serial"]]["status"], "CERTIFICATE_STATUS_ACTIVE")
        self.assertEqual(certs[cert["serial"]]["principal"],
                         {"type": "PRINCIPAL_TYPE_DEVICE", "id": "imei-3"})
        self.assertEqual(certs[cert["serial"]]["sha256Fingerprint"], cert["sha256Fingerprint"])
        # Broker and server certificates are not client certificates: never sent.
        self.assertEqual(len(certs), self.count(
            db, where="kind IN ('device', 'identity') AND not_after > now()"))

        # A profile change made with a reflection client arrives as a delta.
        t0 = time.monotonic()
        self.ok(client.call("AssignAclProfile", {"assignment": {
            "subjectType": "ACL_SUBJECT_TYPE_DEVICE", "subjectId": "imei-1",
            "profileName": "watcher"}}, service=ACL))
        m, change = self.delta(stream, lambda c: "aclAssignment" in c, "the assignment")
        self.assertLess(time.monotonic() - t0, 5)
        self.assertEqual(change["aclAssignment"]["profileName"], "watcher")
        self.assertEqual(change["aclAssignment"]["subjectId"], "imei-1")
        self.assertFalse(change["deleted"])
        assigned_at = int(m["revision"])
        self.assertGreater(assigned_at, revision)
        self.assertEqual(int(change["revision"]), assigned_at)

        # A certificate issued, then revoked: its state each time, then the issuer's CRL.
        _, cert2 = self.new_device_cert(client, "imei-4")
        self.delta(stream, lambda c: c.get("device", {}).get("commId") == "imei-4", "imei-4")
        _, change = self.delta(stream, lambda c: c.get("certificate", {}).get("serial") ==
                               cert2["serial"], "the new certificate")
        self.assertEqual(change["certificate"]["status"], "CERTIFICATE_STATUS_ACTIVE")
        self.ok(client.call("RevokeCertificate", {
            "serial": cert2["serial"], "reason": "REVOCATION_REASON_KEY_COMPROMISE"},
            service=REVOCATION))
        _, change = self.delta(stream, lambda c: c.get("certificate", {}).get("serial") ==
                               cert2["serial"], "the revocation")
        self.assertEqual(change["certificate"]["status"], "CERTIFICATE_STATUS_REVOKED")
        self.assertEqual(change["certificate"]["revocationReason"],
                         "REVOCATION_REASON_KEY_COMPROMISE")
        m, change = self.delta(stream, lambda c: "crl" in c, "the new CRL")
        crl = change["crl"]
        self.assertEqual(crl["issuerId"], cert2["issuerId"])
        self.assertGreater(len(crl["crlDer"]), 100)

        # Idle: heartbeats at the interval, with the revision delivered.
        last = int(m["revision"])
        beat = stream.until(lambda x: "heartbeat" in x, timeout=10, what="a heartbeat")[-1]
        self.assertGreaterEqual(int(beat["heartbeat"]["revision"]), last)
        resume = int(beat["heartbeat"]["revision"])
        stream.close()

        # Resuming from that revision: no snapshot, only what was missed.
        self.ok(client.call("UpdateDevice", {"device": {"commId": "imei-2", "groups": ["g2"]},
                                             "updateMask": "groups"}))
        resumed = self.watch(client, "mqtt-1", since=resume)
        m, change = self.delta(resumed, lambda c: "device" in c, "the missed change")
        self.assertEqual(change["device"], {"commId": "imei-2", "groups": ["g2"],
                                            "status": "DEVICE_STATUS_SUSPENDED",
                                            "attributes": {}})
        self.assertEqual([kind_of(c) for c in m["changes"] if kind_of(c) != "crl"], ["device"])
        self.assertGreater(int(m["revision"]), resume)

        # A revision the server never handed out (a restored database): a snapshot.
        ahead = self.watch(client, "mqtt-1", since=10**9, types=["SYNC_OBJECT_TYPE_DEVICE"])
        _, objects = self.snapshot(ahead, "SNAPSHOT_REASON_REVISION_AHEAD")
        self.assertEqual(sorted(objects), ["device"])
        self.assertEqual(len(objects["device"]), 4)

    def test_refusals(self):
        db, server, client = self.serve("syncerr")
        self.register_broker(client, "mqtt-1")

        def refused(request, code, field):
            s = client.stream("Watch", request, BROKERS)
            self.addCleanup(s.close)
            self.assertIsNone(s.next(), "a refused stream sends nothing")
            self.assertRefused(s.outcome(), code, field)

        refused({"brokerId": "nope"}, "NOT_FOUND", "")
        refused({}, "INVALID_ARGUMENT", "broker_id")
        refused({"brokerId": "mqtt-1", "sinceRevision": "-1"}, "INVALID_ARGUMENT", "since_revision")
        refused({"brokerId": "mqtt-1", "heartbeatInterval": "0.5s"}, "INVALID_ARGUMENT",
                "heartbeat_interval")
        refused({"brokerId": "mqtt-1", "heartbeatInterval": "61s"}, "INVALID_ARGUMENT",
                "heartbeat_interval")
        refused({"brokerId": "mqtt-1", "objectTypes": [42]}, "INVALID_ARGUMENT", "object_types[0]")


if __name__ == "__main__":
    import unittest
    unittest.main()
