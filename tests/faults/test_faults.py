"""Fault tests (docs/reliability.md): issuance and revocation under load from many concurrent
clients (fault_load: 16 issuing and 2 revoking gRPC clients over TLS, each retrying a failed
call with the same request id), while

  (a) the server is killed with SIGKILL and restarted on the same port,
  (b) PostgreSQL restarts (fast shutdown: every backend ends, then back),
  (c) PostgreSQL refuses connections for several seconds (pg_hba.conf `reject` reloaded, and
      every backend of the database terminated: what a failover or a network cut does).

After each, with nothing done by hand: every certificate a client received is in the
database with the same DER and verifies (openssl verify); no serial twice; each request id
has one certificate, and sending it again returns that certificate; no request failed for
good; every acknowledged revocation is stored, listed by a complete CRL served after the
fault, REVOKED in a Watch snapshot, and refused at CONNECT by the fleetca_auth.so plugin in a
real mosquitto whose stream lived through the fault; the audit chain verifies.
"""

import os
import time
import unittest

from faultlib import FaultTestCase, log

WARM_CERTS = 150         # certificates received before the fault
WARM_REVOCATIONS = 10    # revocations acknowledged before the fault
AFTER_CERTS = 100        # certificates received after the fault, to call it recovered
AFTER_REVOCATIONS = 10
RECOVERY_TIMEOUT = 120   # generous: a loaded 2-core CI machine; correctness, not speed


class FaultTest(FaultTestCase):

    def run_scenario(self, name, fault):
        self.start_world(name)
        self.wait_mosq_log("snapshot swapped in")
        load = self.start_load()
        load.wait_certificates(WARM_CERTS, timeout=180)
        load.wait_revocations(WARM_REVOCATIONS, timeout=120)
        fault_start = time.time()
        log(f"{name}: fault begins with {len(load.certificates())} certificates received")
        fault_end = fault()
        log(f"{name}: fault over after {fault_end - fault_start:.1f}s")
        # Recovered without a manual step: the same clients get certificates and revocations
        # acknowledged again.
        load.wait_certificates(AFTER_CERTS, timeout=RECOVERY_TIMEOUT, after=fault_end)
        load.wait_revocations(AFTER_REVOCATIONS, timeout=RECOVERY_TIMEOUT, after=fault_end)
        self.wait_serving()
        summary = load.stop()
        log(f"{name}: load stopped: {summary}")
        self.figures.update(self.recovery_figures(load, fault_start, fault_end))
        self.assertGreater(summary["retried_requests"], 0, "the fault hit no request")
        self.check_everything(load, summary, fault_end)
        self.assertIsNone(self.server.proc.poll(), "the server exited")
        self.report(name, load, summary)

    def test_a_server_killed_and_restarted(self):
        def fault():
            port = self.server.port
            self.server.proc.kill()  # SIGKILL: no shutdown, calls cut mid-flight
            self.server.proc.wait(timeout=30)
            self.restart_server(port)
            return time.time()
        self.run_scenario("kill-server", fault)

    def test_b_postgres_restarted(self):
        def fault():
            self.cluster.stop()
            time.sleep(3)
            self.assertIsNone(self.server.proc.poll(), "the server exited with PostgreSQL down")
            self.cluster.start()
            return time.time()
        self.run_scenario("pg-restart", fault)

    def test_c_postgres_refusing_connections(self):
        def fault():
            ended = self.refuse_tcp(True)
            refused, why = self.tcp_refused()
            self.assertTrue(refused, f"PostgreSQL still accepts connections: {why}")
            self.figures["backends_terminated"] = ended
            time.sleep(8)
            self.assertIsNone(self.server.proc.poll(), "the server exited")
            self.refuse_tcp(False)
            return time.time()
        self.run_scenario("pg-refusing", fault)


if __name__ == "__main__":
    unittest.main()
