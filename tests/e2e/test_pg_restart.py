"""PostgreSQL restarted under a running server: calls fail fast with UNAVAILABLE while it is
down, succeed again soon after it is back (same server process), and nothing is lost; the
HTTP probes say so (/healthz alive throughout, /readyz 503 while the database is down or the
CA is not initialised). Uses a private PostgreSQL cluster so that no other test sees the
restart."""

import time
import unittest
import urllib.error
import urllib.request

from fleetca_e2e import E2ETestCase, log, parallel

DOWN_CALL_BOUND = 30.0   # seconds a call may take to fail while PostgreSQL is down
RECOVERY_BOUND = 30.0    # seconds after PostgreSQL is back until calls succeed again


def probe(server, path):
    """GET on the server's HTTP port: (status, body)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}{path}", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class PostgresRestartTest(E2ETestCase):

    def wait_ready_probe(self, server, status, needle, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            got = probe(server, "/readyz")
            if got[0] == status and needle in got[1]:
                return
            if time.monotonic() > deadline:
                self.fail(f"/readyz is not {status} {needle!r} after {timeout}s: {got!r}")
            time.sleep(0.2)

    def wait_health(self, client, status, timeout):
        deadline = time.monotonic() + timeout
        while True:
            r = client.health()
            if r.code == "OK" and r.body.get("status") == status:
                return
            if time.monotonic() > deadline:
                self.fail(f"health is not {status} after {timeout}s: {r!r}")
            time.sleep(0.2)

    def count(self, client):
        ids, token = [], ""
        while True:
            body = self.ok(client.call("ListDevices", {"pageSize": 1000, "pageToken": token}))
            ids += [d["commId"] for d in body.get("devices", [])]
            token = body.get("nextPageToken", "")
            if not token:
                return ids

    def test_unavailable_then_recovery_without_restarting_the_server(self):
        cluster = self.new_cluster("restart")
        server = self.start_server(cluster.url, args=["--db_connect_timeout=3s",
                                                      "--db_acquire_timeout=5s"])
        client = server.wait_ready()
        # The probes: alive at once; ready only once the CA's keys are there.
        self.assertEqual(probe(server, "/healthz"), (200, "ok\n"))
        self.wait_ready_probe(server, 503, "no active devices CA")
        self.ok(client.call("InitializeHierarchy", {}, service="fleetca.v1.CertificateAuthorityService"))
        self.wait_ready_probe(server, 200, "ready")

        self.ok(client.call("BatchRegisterDevices", {"devices": [
            {"commId": f"before-{i:03d}"} for i in range(200)]}))
        for i in range(3):
            self.ok(client.call("RegisterDevice", {"device": {"commId": f"single-{i}"}}))
        # Several calls at once, so that the pool holds several connections that the restart
        # will break.
        for r in parallel([lambda: client.call("ListDevices", {"pageSize": 1000})] * 6, 6):
            self.ok(r, "parallel ListDevices")
        before = self.count(client)
        self.assertEqual(len(before), 203)

        log("stopping PostgreSQL")
        cluster.stop()
        for method, request in [
            ("GetDevice", {"commId": "before-001"}),
            ("RegisterDevice", {"device": {"commId": "while-down"}}),
            ("ListDevices", {}),
            ("BatchRegisterDevices", {"devices": [{"commId": "while-down-batch"}]}),
        ]:
            r = client.call(method, request, timeout=DOWN_CALL_BOUND + 30)
            self.assertCode(r, "UNAVAILABLE", f"{method} while PostgreSQL is down")
            self.assertLess(r.seconds, DOWN_CALL_BOUND, f"{method} took too long to fail: {r!r}")
        self.wait_health(client, "NOT_SERVING", 30)
        self.wait_ready_probe(server, 503, "database unreachable")
        self.assertEqual(probe(server, "/healthz"), (200, "ok\n"))  # alive: do not restart it
        self.assertIsNone(server.proc.poll(), "the server exited while PostgreSQL was down")

        log("starting PostgreSQL again")
        cluster.start()
        back = time.monotonic()
        deadline = back + RECOVERY_BOUND
        while True:
            r = client.call("GetDevice", {"commId": "before-001"})
            if r.code == "OK":
                break
            self.assertCode(r, "UNAVAILABLE", "GetDevice while PostgreSQL comes back")
            if time.monotonic() > deadline:
                self.fail(f"still failing {RECOVERY_BOUND}s after PostgreSQL is back: {r!r}")
            time.sleep(0.2)
        log(f"calls succeed again {time.monotonic() - back:.1f}s after PostgreSQL is back")

        # Once one call succeeds, all do: no call pays for a stale pooled connection.
        for round_ in range(3):
            for r in parallel([lambda: client.call("ListDevices", {"pageSize": 10})] * 6, 6):
                self.ok(r, f"parallel ListDevices after recovery, round {round_}")
        self.ok(client.call("RegisterDevice", {"device": {"commId": "after-1"}}))
        self.assertEqual(self.count(client), sorted(before + ["after-1"]))
        self.wait_health(client, "SERVING", 30)
        self.wait_ready_probe(server, 200, "ready")
        self.assertIn("database reachable again", server.messages())

        self.assertEqual(server.stop(), 0, server.describe())


if __name__ == "__main__":
    unittest.main()
