"""Graceful shutdown: SIGTERM while a large batch is in flight lets the call finish (OK, every
device registered) and the process exits 0; new calls are refused meanwhile.

To have the batch deterministically in flight when SIGTERM arrives, a psql session holds a
lock on the devices table: the batch waits on it inside the server until the test lets go."""

import subprocess
import threading
import time
import unittest

from fleetca_e2e import PROTO_DIR, E2ETestCase, log, psql_path

BATCH_SIZE = 10000


class TableLock:
    """A psql session holding LOCK TABLE devices until release()."""

    def __init__(self, url):
        self.proc = subprocess.Popen([psql_path(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.proc.stdin.write("BEGIN;\nLOCK TABLE devices IN EXCLUSIVE MODE;\n\\echo locked\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if line.strip() != "locked":
            raise AssertionError(f"could not lock the devices table: {line}{self.proc.stdout.read()}")

    def release(self):
        if self.proc.poll() is None:
            self.proc.communicate("COMMIT;\n\\q\n", timeout=60)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class GracefulShutdownTest(E2ETestCase):

    def wait_blocked_on_lock(self, db, timeout=120):
        """Waits until a server connection waits on a lock (the batch, on our table lock)."""
        deadline = time.monotonic() + timeout
        while True:
            waiting = db.query(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()")
            if waiting != "0":
                return
            if time.monotonic() > deadline:
                self.fail("the batch never reached the database")
            time.sleep(0.05)

    def test_sigterm_lets_an_in_flight_batch_finish(self):
        db = self.new_database("shutdown")
        server = self.start_server(db.url, args=["--shutdown_grace=60s"])
        client = server.wait_ready()
        self.ok(client.call("RegisterDevice", {"device": {"commId": "warm-up"}}))

        lock = TableLock(db.url)
        self.resources.append(lock)
        result = {}
        devices = [{"commId": f"late-{i:05d}", "attributes": {"lot": "l1"}} for i in range(BATCH_SIZE)]
        call = threading.Thread(target=lambda: result.setdefault(
            "r", client.call("BatchRegisterDevices", {"devices": devices}, timeout=180)))
        call.start()
        try:
            self.wait_blocked_on_lock(db)
            log("batch in flight: SIGTERM")
            server.terminate()
            server.wait_log("shutting down")
            # Shutting down: new calls are refused, the process waits for the batch. (With
            # reflection, buf curl reports a refused connection as "failed to find service",
            # exit 1: this call brings its own schema to see the real status.)
            # The log line comes just before the listener closes: a call may still slip in.
            deadline = time.monotonic() + 60
            while True:
                r = client.call("GetDevice", {"commId": "warm-up"}, timeout=30, schema=PROTO_DIR)
                if r.code != "OK" or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            self.assertCode(r, "UNAVAILABLE", "a new call during shutdown")
            self.assertIsNone(server.proc.poll(), "exited with a call in flight: " + server.describe())
        finally:
            lock.release()
            call.join(240)
        self.assertFalse(call.is_alive(), "the batch call never returned")
        body = self.ok(result["r"], "the in-flight batch")
        self.assertEqual((body["registeredCount"], body["failedCount"]), (BATCH_SIZE, 0))
        self.assertEqual(server.wait_exit(), 0, server.describe())
        self.assertEqual(server.messages()[-1], "stopped")
        self.assertEqual(db.query("SELECT count(*) FROM devices"), str(BATCH_SIZE + 1))

    def test_grace_expiry_cancels_the_batch_and_exits(self):
        # A call still running when --shutdown_grace ends is cancelled: the client is told so
        # (UNAVAILABLE: "retry the call", which promises nothing was registered), its
        # transaction must be rolled back, and the process exits soon after the grace period
        # rather than whenever the database lets the call go.
        grace = 2.0
        db = self.new_database("grace")
        server = self.start_server(db.url, args=[f"--shutdown_grace={int(grace)}s"])
        client = server.wait_ready()
        lock = TableLock(db.url)
        self.resources.append(lock)
        result = {}
        call = threading.Thread(target=lambda: result.setdefault("r", client.call(
            "BatchRegisterDevices", {"devices": [{"commId": f"cut-{i}"} for i in range(100)]},
            timeout=180)))
        call.start()
        try:
            self.wait_blocked_on_lock(db)
            server.terminate()
            t0 = time.monotonic()
            call.join(120)
            self.assertFalse(call.is_alive(), "the batch call never returned")
            self.assertNotEqual(result["r"].code, "OK", result["r"])
            # The lock is still held: the server must not wait for the database to finish.
            deadline = t0 + grace + 15
            while server.proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            exited_in = time.monotonic() - t0
        finally:
            lock.release()
        self.assertEqual(server.wait_exit(), 0, server.describe())
        self.assertEqual(db.query("SELECT count(*) FROM devices"), "0",
                         f"the client got {result['r']!r} but the batch was committed")
        self.assertLess(exited_in, grace + 15,
                        "the process waited for the blocked database call past the grace period")


if __name__ == "__main__":
    unittest.main()
