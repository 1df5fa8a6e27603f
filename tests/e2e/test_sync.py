"""BrokerSyncService.Watch as a broker (or an operator with a reflection client) sees it:
a snapshot, then the deltas as changes commit, heartbeats, resuming from a revision, and the
refusals."""

import os
import subprocess
import threading
import time

from fleetca_e2e import SERVER, _die_with_parent
from test_issuance import BROKERS, MOSQUITTO_SUB, IssuanceTestCase, Mosquitto, read, write

SYNC = os.environ.get("FLEETCA_SYNC") or os.path.join(
    os.path.dirname(os.path.dirname(SERVER)), "sync_agent", "fleetca-sync")

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
        """The first change not returned before that predicate accepts, and the changes
        message holding it: (message, change). Changes of one message may be asked for one
        after the other (a commit and the CRL it causes may arrive together)."""
        pending = stream.__dict__.setdefault("pending", [])
        while True:
            for i, (m, c) in enumerate(pending):
                if predicate(c):
                    del pending[:i + 1]
                    return m, c
            m = stream.next()
            if m is None:
                raise AssertionError(f"the stream ended before {what}: {stream.outcome()}")
            self.assertNotIn("snapshotBegin", m, "an unexpected snapshot")
            for c in m.get("changes", {}).get("changes", []):
                pending.append((m["changes"], c))

    def wait_sync(self, client, broker_id, predicate, timeout=20):
        """Polls GetBroker until its sync state satisfies predicate; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            sync = self.ok(client.call("GetBroker", {"brokerId": broker_id},
                                       service=BROKERS))["broker"]["sync"]
            if predicate(sync):
                return sync
            self.assertLess(time.monotonic(), deadline, f"sync state: {sync}")
            time.sleep(0.5)

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

        # The replicas record the broker's stream (every 5 s): GetBroker shows it.
        sync = self.wait_sync(client, "mqtt-1", lambda s: s.get("watching") and
                              int(s["sentRevision"]) >= revision)
        self.assertEqual(sync["streamCount"], 1)
        self.assertGreaterEqual(int(sync["headRevision"]), revision)
        self.assertIn("lastSeenTime", sync)

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
        m, change = self.delta(stream, lambda c: c.get("certificate", {}).get("serial") ==
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
        sync = self.wait_sync(client, "mqtt-1", lambda s: not s.get("watching"))
        self.assertEqual(sync["streamCount"], 0)
        self.assertGreaterEqual(int(sync["sentRevision"]), resume)

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

    def test_fleetca_sync_keeps_a_stock_mosquitto_in_step(self):
        """The issue's "Done when": fleetca-sync beside a real mosquitto makes it refuse a
        revoked device and deny a device publishing on another device's topic, and follows
        a profile change, without anyone restarting the broker."""
        db, server, client = self.serve("syncmosq")
        self.register_broker(client, "mqtt-1", dns=["localhost"], ips=["127.0.0.1"])
        key_a, cert_a = self.new_device_cert(client, "imei-a")
        key_b, cert_b = self.new_device_cert(client, "imei-b")
        path_a = write(self.pki.path("imei-a.crt"), cert_a["certificatePem"])
        path_b = write(self.pki.path("imei-b.crt"), cert_b["certificatePem"])
        broker_key, broker_csr = self.pki.csr("broker", "/CN=localhost")
        broker = self.ok(self.sign_broker(client, "mqtt-1", broker_csr))["certificate"]
        servers = write(self.pki.path("server-ca.pem"),
                        self.trust_bundle(client, "TRUST_BUNDLE_SCOPE_SERVER_AUTH")["bundlePem"])
        # imei-b also watches everything (the built-in watcher profile: read #).
        self.ok(client.call("AssignAclProfile", {"assignment": {
            "subjectType": "ACL_SUBJECT_TYPE_DEVICE", "subjectId": "imei-b",
            "profileName": "watcher"}}, service=ACL))

        folder = os.path.join(self.tmpdir, "mosquitto")
        os.makedirs(folder, exist_ok=True)
        os.chmod(folder, 0o755)
        files = {name: os.path.join(folder, name) for name in ("cafile", "crlfile", "acl_file")}
        files["pid_file"] = os.path.join(folder, "mosquitto.pid")
        agent_log = open(os.path.join(self.tmpdir, "fleetca-sync.log"), "w")
        self.addCleanup(agent_log.close)
        agent = subprocess.Popen(
            [SYNC, f"--server=127.0.0.1:{server.port}", "--insecure_plaintext",
             "--broker_id=mqtt-1", f"--cafile={files['cafile']}",
             f"--crlfile={files['crlfile']}", f"--acl_file={files['acl_file']}",
             f"--mosquitto_pid_file={files['pid_file']}", "--heartbeat_interval=2s"],
            stdout=agent_log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)

        def stop_agent():
            agent.terminate()
            agent.wait(timeout=20)
        self.addCleanup(stop_agent)

        def agent_text():
            with open(os.path.join(self.tmpdir, "fleetca-sync.log")) as f:
                return f.read()

        def wait_file(name, needle, timeout=30):
            deadline = time.monotonic() + timeout
            while True:
                if os.path.exists(files[name]):
                    with open(files[name]) as f:
                        if needle in f.read():
                            return
                self.assertIsNone(agent.poll(), "fleetca-sync exited:\n" + agent_text())
                self.assertLess(time.monotonic(), deadline,
                                f"{name} never held {needle!r}:\n" + agent_text())
                time.sleep(0.1)

        wait_file("cafile", "BEGIN CERTIFICATE")
        wait_file("crlfile", "BEGIN X509 CRL")
        wait_file("acl_file", "user imei-a")
        self.assertIn("topic readwrite devices/imei-a/#", read(files["acl_file"]))
        mosq = Mosquitto(folder, None, broker["certificatePem"] + broker["chainPem"], broker_key,
                         files=files)
        self.addCleanup(mosq.close)

        # imei-b subscribes to everything; imei-a publishes on its own topic (delivered) and
        # on imei-b's (denied by the broker: never delivered).
        sub = subprocess.Popen(
            [MOSQUITTO_SUB, "-h", "localhost", "-p", str(mosq.port), "--cafile", servers,
             "--cert", path_b, "--key", key_b, "-i", "imei-b", "-t", "#", "-v", "-q", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            preexec_fn=_die_with_parent)
        self.addCleanup(lambda: (sub.kill(), sub.wait(), sub.stdout.close()))
        received = []
        threading.Thread(target=lambda: received.extend(sub.stdout), daemon=True).start()

        def delivered(topic, message, timeout=20):
            """Publishes as imei-a until the subscriber receives `message` on topic."""
            deadline = time.monotonic() + timeout
            while True:
                r = mosq.publish("localhost", servers, path_a, key_a, "imei-a", topic, message)
                self.assertEqual(r.returncode, 0, f"{r.stdout}{r.stderr}\n{mosq.log_text()}")
                end = time.monotonic() + 1
                while time.monotonic() < end:
                    if f"{topic} {message}\n" in received:
                        return
                    time.sleep(0.05)
                self.assertLess(time.monotonic(), deadline,
                                f"{message} never delivered; got {received}\n{mosq.log_text()}")

        delivered("devices/imei-a/up", "own-1")
        r = mosq.publish("localhost", servers, path_a, key_a, "imei-a", "devices/imei-b/cmd",
                         "foreign-1")
        self.assertEqual(r.returncode, 0, r.stderr)  # MQTT 3.1.1: a denied QoS 1 still gets PUBACK
        delivered("devices/imei-a/up", "own-2")  # sent after: once it is in, the other was judged
        self.assertNotIn("devices/imei-b/cmd foreign-1\n", received)
        self.assertIn("Denied PUBLISH from imei-a", mosq.log_text())

        # A profile change: imei-a may now also publish under imei-b's subtree.
        self.ok(client.call("CreateAclProfile", {"profile": {
            "name": "peer-b", "rules": [{"topicPattern": "devices/imei-b/cmd",
                                         "access": "ACL_ACCESS_WRITE"}]}}, service=ACL))
        self.ok(client.call("AssignAclProfile", {"assignment": {
            "subjectType": "ACL_SUBJECT_TYPE_DEVICE", "subjectId": "imei-a",
            "profileName": "peer-b"}}, service=ACL))
        wait_file("acl_file", "topic write devices/imei-b/cmd")
        delivered("devices/imei-b/cmd", "foreign-2")

        # Revoked: the crlfile lists it, mosquitto reloads and refuses the certificate.
        crls_before = read(files["crlfile"])
        self.ok(client.call("RevokeCertificate", {
            "serial": cert_a["serial"], "reason": "REVOCATION_REASON_KEY_COMPROMISE"},
            service=REVOCATION))
        deadline = time.monotonic() + 30
        while read(files["crlfile"]) == crls_before:
            self.assertLess(time.monotonic(), deadline, "the crlfile never changed:\n" + agent_text())
            time.sleep(0.1)
        while True:
            r = mosq.publish("localhost", servers, path_a, key_a, "imei-a", "devices/imei-a/up",
                             "after-revocation")
            if r.returncode != 0 and "certificate verify failed" in mosq.log_text():
                break
            self.assertLess(time.monotonic(), deadline,
                            "mosquitto does not refuse the revoked certificate:\n"
                            + mosq.log_text() + agent_text())
            time.sleep(0.3)
        # The broker was never restarted: the same process throughout, signalled by the agent.
        self.assertIsNone(mosq.proc.poll())
        self.assertIn("\"broker_signalled\":\"yes\"", agent_text())

    def test_two_replicas_send_the_same_sequence(self):
        """Two servers on one database: brokers following either, from the same revision,
        get the same changes at the same revisions, in the same order, ending in the same
        state; and a broker may resume on the other replica where it stopped."""
        db, server, client = self.serve("syncreplicas")
        self.register_broker(client, "mqtt-1")
        other = self.start_server(db.url, name="replica-2").wait_ready()
        start = int(db.query("SELECT max(revision) FROM change_log"))
        streams = [self.watch(c, "mqtt-1", since=start, heartbeat="1s") for c in (client, other)]
        # Changes through both replicas, interleaved.
        for i in range(12):
            c = client if i % 2 == 0 else other
            self.ok(c.call("RegisterDevice", {"device": {"commId": f"r-{i}"}}))
            if i % 3 == 0:
                self.ok(c.call("UpdateDevice", {"device": {"commId": f"r-{i}", "groups": ["g"]},
                                                "updateMask": "groups"}))
        self.ok(other.call("AssignAclProfile", {"assignment": {
            "subjectType": "ACL_SUBJECT_TYPE_GROUP", "subjectId": "g",
            "profileName": "watcher"}}, service=ACL))
        head = int(db.query("SELECT max(revision) FROM change_log"))

        def collect(stream):
            """(revision, kind, key) of every change up to head, and the final states."""
            seen, state = [], {}
            while True:
                m = stream.next()
                self.assertIsNotNone(m, "the stream ended")
                self.assertNotIn("snapshotBegin", m)
                if "heartbeat" in m and int(m["heartbeat"]["revision"]) >= head:
                    return seen, state
                for c in m.get("changes", {}).get("changes", []):
                    kind = kind_of(c)
                    obj = c[kind]
                    key = obj.get("commId") or obj.get("name") or obj.get("issuerId") or (
                        obj.get("subjectType"), obj.get("subjectId"), obj.get("profileName"))
                    seen.append((int(c["revision"]), kind, str(key)))
                    state[(kind, str(key))] = obj
        (seen_1, state_1), (seen_2, state_2) = collect(streams[0]), collect(streams[1])
        self.assertEqual(seen_1, seen_2)
        self.assertEqual(state_1, state_2)
        self.assertEqual([r for r, _, _ in seen_1], sorted(r for r, _, _ in seen_1))
        self.assertIn((head, "aclAssignment", str(("ACL_SUBJECT_TYPE_GROUP", "g", "watcher"))),
                      seen_1)
        # Each change once, at its revision: 12 registrations and 4 updates.
        self.assertEqual(len([k for k in seen_1 if k[1] == "device"]), 16, seen_1)
        # Resume on the other replica from the middle: only what came after.
        middle = seen_1[len(seen_1) // 2][0]
        resumed = self.watch(other, "mqtt-1", since=middle, heartbeat="1s")
        rest, _ = collect(resumed)
        self.assertEqual(rest, [k for k in seen_1 if k[0] > middle])

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
