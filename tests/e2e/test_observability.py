"""What an operator watches: GET /metrics in the Prometheus text format with the counters
moving as calls are made (calls by method and code, issuance by outcome, revocations, CRLs,
the pool, sync streams, certificates expiring soon), and the access log: one JSON line per
call with its request id (the caller's, or one the server made and returned) and the
caller's identity, never a key or a CSR."""

import math
import os
import re
import time
import urllib.request

from test_issuance import BROKERS, ISSUANCE
from test_security import SecurityTestCase

REVOCATION = "fleetca.v1.RevocationService"
AUDIT = "fleetca.v1.AuditService"

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """Prometheus text format 0.0.4 -> ({(name, frozenset(labels)): value}, {name: type}).
    Fails on anything malformed: a sample without its TYPE, a bad line, a duplicate series."""
    samples, types = {}, {}
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "histogram"), line
            assert name not in types, f"TYPE twice: {line}"
            types[name] = kind
            continue
        m = SAMPLE.match(line)
        assert m, f"malformed sample line: {line!r}"
        name, labels = m.group(1), m.group(3) or ""
        family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
        assert family in types, f"sample before its TYPE: {line!r}"
        pairs = LABEL.findall(labels)
        assert ",".join(f'{k}="{v}"' for k, v in pairs) == labels, f"bad labels: {line!r}"
        key = (name, frozenset(pairs))
        assert key not in samples, f"duplicate series: {line!r}"
        samples[key] = float(m.group(4))
    return samples, types


class Metrics:
    def __init__(self, text):
        self.text = text
        self.samples, self.types = parse_metrics(text)

    def get(self, name, **labels):
        """The value of the one series with these labels (others may exist); 0 if absent."""
        want = set(labels.items())
        found = [v for (n, l), v in self.samples.items() if n == name and want <= set(l)]
        assert len(found) <= 1, f"{name}{labels}: {len(found)} series"
        return found[0] if found else 0.0

    def series(self, name):
        return {l: v for (n, l), v in self.samples.items() if n == name}


class ObservabilityTest(SecurityTestCase):

    def scrape(self, server):
        with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/metrics", timeout=10) as r:
            self.assertEqual(r.status, 200)
            self.assertTrue(r.headers["Content-Type"].startswith("text/plain; version=0.0.4"))
            return Metrics(r.read().decode())

    def wait_metric(self, server, predicate, what, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            m = self.scrape(server)
            if predicate(m):
                return m
            if time.monotonic() > deadline:
                self.fail(f"{what} not seen in /metrics after {timeout}s:\n{m.text}")
            time.sleep(0.2)

    def test_metrics_move_with_calls(self):
        db, server, admin = self.serve_tls("metrics")
        before = self.scrape(server)
        for name in ("fleetca_grpc_server_handled_total", "fleetca_certificates_issued_total",
                     "fleetca_certificates_revoked_total", "fleetca_db_pool_connections",
                     "fleetca_crl_age_seconds", "fleetca_sync_watchers",
                     "fleetca_certificates_expiring", "process_resident_memory_bytes",
                     "fleetca_grpc_server_handling_seconds", "fleetca_http_requests_total"):
            self.assertIn(name, before.types, f"{name} missing from /metrics")
        self.assertEqual(before.types["fleetca_grpc_server_handling_seconds"], "histogram")
        self.assertGreater(before.get("process_resident_memory_bytes"), 1e6)
        self.assertEqual(before.get("fleetca_build_info", version="0.1.0"), 1)
        self.assertGreaterEqual(before.get("fleetca_db_pool_max_connections"), 1)

        # Calls: counted by service, method and code.
        register = dict(grpc_service="fleetca.v1.DeviceRegistryService", grpc_method="RegisterDevice")
        get = dict(grpc_service="fleetca.v1.DeviceRegistryService", grpc_method="GetDevice")
        for i in range(3):
            self.register(admin, f"obs-{i}")
        self.assertCode(admin.call("GetDevice", {"commId": "nobody"}), "NOT_FOUND")
        self.assertCode(admin.call("RegisterDevice", {"device": {"commId": "bad/id"}}),
                        "INVALID_ARGUMENT")

        # Issuance: issued, replayed (same request id), refused (suspended device).
        key_path, csr = self.pki.csr("obs-0", "/CN=obs-0")
        first = self.sign_call(admin, "obs-0", csr, request_id="obs-req-1", validity="172800s")
        cert = self.ok(first)["certificate"]
        self.assertTrue(self.ok(self.sign_call(admin, "obs-0", csr, request_id="obs-req-1",
                                               validity="172800s"))["replayed"])
        self.register(admin, "obs-suspended", status="DEVICE_STATUS_SUSPENDED")
        _, csr2 = self.pki.csr("obs-suspended", "/CN=obs-suspended")
        self.assertCode(self.sign_call(admin, "obs-suspended", csr2), "FAILED_PRECONDITION")

        # A revocation, then the CRL that lists it.
        self.ok(admin.call("RevokeCertificate", {"serial": cert["serial"],
                                                 "reason": "REVOCATION_REASON_KEY_COMPROMISE"},
                           service=REVOCATION))

        # A broker's Watch stream open on this replica.
        self.register_broker(admin, "mqtt-obs")
        broker = self.issue(admin, "mqtt-obs", "broker")
        stream = admin.as_(broker).stream("Watch", {"brokerId": "mqtt-obs", "heartbeatInterval": "2s"},
                                          BROKERS)
        self.addCleanup(stream.close)
        stream.next()

        m = self.wait_metric(
            server, lambda m: m.get("fleetca_crl_entries", issuer="devices-1", kind="complete") >= 1
            and m.get("fleetca_sync_watchers", broker="mqtt-obs") == 1,
            "the revoked serial's CRL and the broker's stream")
        handled = "fleetca_grpc_server_handled_total"
        self.assertEqual(m.get(handled, grpc_code="OK", **register)
                         - before.get(handled, grpc_code="OK", **register), 4)  # 3 + obs-suspended
        self.assertEqual(m.get(handled, grpc_code="INVALID_ARGUMENT", **register), 1)
        self.assertEqual(m.get(handled, grpc_code="NOT_FOUND", **get), 1)
        self.assertEqual(m.get("fleetca_grpc_server_handling_seconds_count", grpc_code="NOT_FOUND", **get), 1)
        # Histogram buckets are cumulative and end with +Inf = count.
        sign = dict(grpc_service=ISSUANCE, grpc_method="SignDeviceCsr", grpc_code="OK")
        buckets = sorted(((float(dict(l)["le"]), v) for l, v in
                          m.series("fleetca_grpc_server_handling_seconds_bucket").items()
                          if set(sign.items()) <= set(l)), key=lambda b: b[0])
        self.assertTrue(math.isinf(buckets[-1][0]), buckets)
        self.assertEqual([v for _, v in buckets], sorted(v for _, v in buckets))
        self.assertEqual(buckets[-1][1], 2)
        self.assertEqual(m.get("fleetca_grpc_server_handling_seconds_count", **sign), 2)
        self.assertGreater(m.get("fleetca_grpc_server_handling_seconds_sum", **sign), 0)

        issued = "fleetca_certificates_issued_total"
        self.assertEqual(m.get(issued, kind="device", outcome="issued"), 1)
        self.assertEqual(m.get(issued, kind="device", outcome="replayed"), 1)
        self.assertEqual(m.get(issued, kind="device", outcome="failed_precondition"), 1)
        self.assertEqual(m.get(issued, kind="device", profile=cert["profile"], outcome="issued"), 1)
        self.assertEqual(m.get("fleetca_certificates_revoked_total", reason="key_compromise"), 1)

        # CRLs: the devices CA's complete CRL, young, with its size and build time.
        self.assertGreaterEqual(m.get("fleetca_crl_number", issuer="devices-1", kind="complete"), 1)
        self.assertGreater(m.get("fleetca_crl_bytes", issuer="devices-1", kind="complete"), 100)
        self.assertLess(m.get("fleetca_crl_age_seconds", issuer="devices-1", kind="complete"), 120)
        self.assertGreater(m.get("fleetca_crl_next_update_seconds", issuer="devices-1", kind="complete"), 3600)
        self.assertGreater(m.get("fleetca_crl_build_seconds", issuer="devices-1", kind="complete"), 0)

        # Sync: the stream has everything (lag 0 once sent); the pool is in use.
        self.assertGreater(m.get("fleetca_change_log_revision"), 0)
        self.wait_metric(server, lambda m: m.get("fleetca_sync_lag_revisions", broker="mqtt-obs") == 0,
                         "the broker's stream caught up")
        self.assertGreaterEqual(m.get("fleetca_db_pool_connections", state="idle")
                                + m.get("fleetca_db_pool_connections", state="in_use"), 1)
        self.assertGreaterEqual(m.get("fleetca_policy_index_objects", kind="devices"), 4)

        # Expiring soon: the two-day certificate is revoked; a new one of two days counts.
        _, csr3 = self.pki.csr("obs-1", "/CN=obs-1")
        self.ok(self.sign_call(admin, "obs-1", csr3, validity="172800s"))
        # The count is read at most once a minute: wait for the next read.
        self.wait_metric(server, lambda m: m.get("fleetca_certificates_expiring", kind="device",
                                                 within="7d") == 1, "the expiring certificate",
                         timeout=90)
        m = self.scrape(server)
        self.assertEqual(m.get("fleetca_certificates_expiring", kind="device", within="1d"), 0)
        self.assertEqual(m.get("fleetca_certificates_expiring", kind="device", within="30d"), 1)
        self.assertGreaterEqual(m.get("fleetca_http_requests_total", route="/metrics", code="200"), 3)

    def test_access_log_names_the_call_the_caller_and_the_request_id(self):
        db, server, admin = self.serve_tls("accesslog")
        viewer = self.issue(admin, "ops-viewer", "viewer")
        # The caller's request id is kept, logged and recorded in the audit log.
        url = f"{admin.base}/fleetca.v1.DeviceRegistryService/RegisterDevice"
        r = admin._run(["-H", "x-request-id: e2e-obs-42", url], data={"device": {"commId": "log-1"}})
        self.assertCode(r, "OK")
        # Without one, the server makes one and returns it in the response headers.
        r = admin._run(["-v", url], data={"device": {"commId": "log-2"}})
        self.assertCode(r, "OK")
        # (buf curl -v shows the reflection calls' headers first: the call's are the last.)
        ids = re.findall(r"x-request-id: ([0-9a-f]{24})", r.stderr, re.IGNORECASE)
        self.assertTrue(ids, r.stderr)
        generated = ids[-1]
        # A refusal: the viewer may not register.
        denied = admin.as_(viewer)._run(["-H", "x-request-id: e2e-denied-1", url],
                                        data={"device": {"commId": "log-3"}})
        self.assertCode(denied, "PERMISSION_DENIED")
        # A CSR never reaches the log.
        key_path, csr = self.pki.csr("log-1", "/CN=log-1")
        self.ok(self.sign_call(admin, "log-1", csr))

        deadline = time.monotonic() + 10
        while True:
            rpcs = [l for l in server.log_lines() if l.get("msg") == "rpc"]
            if len([l for l in rpcs if l.get("method", "").endswith("/SignDeviceCsr")]) >= 1:
                break
            self.assertLess(time.monotonic(), deadline, server.describe())
            time.sleep(0.1)
        by_id = {l.get("request_id"): l for l in rpcs}
        line = by_id.get("e2e-obs-42")
        self.assertIsNotNone(line, rpcs)
        self.assertEqual(line["method"], "/fleetca.v1.DeviceRegistryService/RegisterDevice")
        self.assertEqual(line["code"], "OK")
        self.assertEqual((line["caller"], line["role"]), ("admin", "admin"))
        self.assertRegex(line["serial"], r"^[0-9a-f]+$")
        self.assertTrue(line["peer"].startswith("ipv4:127.0.0.1:"), line)
        self.assertGreater(float(line["ms"]), 0)
        self.assertLessEqual(line.keys() - {"ts", "level"},
                             {"msg", "method", "code", "ms", "request_id", "caller", "role",
                              "serial", "peer", "error"})
        self.assertIn(generated, by_id)
        refused = [l for l in rpcs if l.get("caller") == "ops-viewer"]
        self.assertEqual(len(refused), 1, rpcs)
        self.assertEqual(refused[0]["code"], "PERMISSION_DENIED")
        self.assertEqual(refused[0]["role"], "viewer")
        self.assertIn("error", refused[0])
        self.assertEqual(refused[0]["request_id"], "e2e-denied-1")
        self.assertEqual(refused[0]["level"], "warning")
        log = server.log_text()
        self.assertNotIn("BEGIN CERTIFICATE REQUEST", log)
        self.assertNotIn("PRIVATE KEY", log)
        self.assertNotIn(csr.splitlines()[1], log)

        # Both request ids are in the audit log, on the entries of their calls.
        for rid, comm_id in (("e2e-obs-42", "log-1"), (generated, "log-2")):
            events = self.ok(admin.call("ListAuditEvents", {"requestId": rid}, service=AUDIT))
            self.assertEqual(len(events.get("events", [])), 1, (rid, events))
            self.assertIn(comm_id, str(events["events"][0]), events)

    def test_access_log_modes(self):
        db = self.new_database("accessmodes")
        server = self.start_server(db.url, args=["--access_log=errors"])
        client = server.wait_ready()
        self.ok(client.call("ListDevices", {}))
        self.assertCode(client.call("GetDevice", {"commId": "missing"}), "NOT_FOUND")
        deadline = time.monotonic() + 10
        while not [l for l in server.log_lines() if l.get("msg") == "rpc"]:
            self.assertLess(time.monotonic(), deadline, server.describe())
            time.sleep(0.1)
        rpcs = [l for l in server.log_lines() if l.get("msg") == "rpc"]
        self.assertEqual([l["code"] for l in rpcs], ["NOT_FOUND"], rpcs)
        self.assertEqual(rpcs[0]["caller"], "anonymous")  # --insecure_plaintext
        bad = self.start_server(db.url, name="bad", args=["--access_log=verbose"])
        self.assertEqual(bad.wait_exit(), 2, bad.describe())
        self.assertIn("--access_log: expected all, errors or off", bad.log_text())
