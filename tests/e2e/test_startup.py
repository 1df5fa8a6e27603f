"""Start-up: clear errors and exit codes (0 ok, 1 runtime failure, 2 bad configuration), the
migrate command, and replicas starting together on a fresh database."""

import glob
import os
import socket
import time
import unittest

from fleetca_e2e import REPO, E2ETestCase, free_port, url_with_db


def migration_versions():
    return sorted(int(os.path.basename(p).split("_")[0])
                  for p in glob.glob(os.path.join(REPO, "migrations", "[0-9]*.sql")))


class StartupTest(E2ETestCase):

    def run_to_exit(self, database_url, timeout=60, **kwargs):
        server = self.start_server(database_url, **kwargs)
        t0 = time.monotonic()
        code = server.wait_exit(timeout)
        return server, code, time.monotonic() - t0

    def error_line(self, server):
        errors = [l for l in server.log_lines() if l.get("level") == "error"]
        self.assertTrue(errors, "no error log line: " + server.describe())
        return errors[-1]

    def test_database_unreachable_exits_1_naming_the_database(self):
        port = free_port()  # nothing listens there
        url = f"postgresql://fleetca:s3cret@127.0.0.1:{port}/fleetca_nowhere"
        server, code, seconds = self.run_to_exit(url)
        self.assertEqual(code, 1, server.describe())
        self.assertLess(seconds, 30)
        err = self.error_line(server)
        text = err.get("msg", "") + " " + err.get("error", "")
        self.assertIn("database", err.get("msg", ""))
        self.assertIn(f"127.0.0.1:{port}/fleetca_nowhere", text)
        self.assertNotIn("s3cret", server.log_text(), "the password is logged")
        self.assertNotIn("serving", server.messages())

    def test_missing_database_exits_1_naming_it(self):
        url = url_with_db(os.environ["FLEETCA_TEST_DATABASE_URL"], "e2e_no_such_database")
        server, code, _ = self.run_to_exit(url)
        self.assertEqual(code, 1, server.describe())
        self.assertIn("e2e_no_such_database", self.error_line(server).get("error", ""))

    def test_bad_configuration_exits_2(self):
        db_url = url_with_db(os.environ["FLEETCA_TEST_DATABASE_URL"], "unused")
        cases = [
            ("--listen=0.0.0.0", dict(listen=f"0.0.0.0:{free_port()}"), "--listen"),
            ("unknown command", dict(command="frobnicate"), "frobnicate"),
            ("bad log level", dict(args=["--log_level=chatty"]), "--log_level"),
        ]
        for what, kwargs, needle in cases:
            with self.subTest(what):
                server, code, _ = self.run_to_exit(db_url, **kwargs)
                self.assertEqual(code, 2, server.describe())
                self.assertIn(needle, self.error_line(server).get("error", ""))
        with self.subTest("no database URL"):
            server, code, _ = self.run_to_exit("")
            self.assertEqual(code, 2, server.describe())
            self.assertIn("--database_url", self.error_line(server).get("error", ""))

    def test_listen_address_in_use_exits_1(self):
        db = self.new_database("inuse")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            port = s.getsockname()[1]
            server, code, _ = self.run_to_exit(db.url, listen=f"127.0.0.1:{port}")
            self.assertEqual(code, 1, server.describe())
            self.assertIn("cannot listen", server.messages())

    def test_second_server_on_the_same_port_exits_1(self):
        # gRPC sets SO_REUSEPORT by default: unless the server turns it off, a second server
        # (a forgotten one, another checkout's) silently shares the port and the calls.
        db = self.new_database("sameport")
        first = self.start_server(db.url, name="first")
        first.wait_ready()
        second = self.start_server(db.url, name="second", listen=f"127.0.0.1:{first.port}")
        deadline = time.monotonic() + 60
        while second.proc.poll() is None:
            self.assertNotIn("serving", second.messages(),
                             f"a second server also serves on port {first.port}: "
                             + second.describe())
            self.assertLess(time.monotonic(), deadline, second.describe())
            time.sleep(0.05)
        self.assertEqual(second.proc.returncode, 1, second.describe())
        self.assertIn("cannot listen", second.messages())
        self.assertEqual(first.stop(), 0, first.describe())

    def test_migrate_command_applies_once(self):
        db = self.new_database("migrate")
        versions = migration_versions()
        self.assertTrue(versions)
        server, code, _ = self.run_to_exit(db.url, command="migrate")
        self.assertEqual(code, 0, server.describe())
        applied = [l for l in server.log_lines() if l.get("msg") == "migration applied"]
        self.assertEqual([int(l["version"]) for l in applied], versions)
        server, code, _ = self.run_to_exit(db.url, command="migrate", name="again")
        self.assertEqual(code, 0, server.describe())
        self.assertNotIn("migration applied", server.messages())
        self.assertEqual(db.query("SELECT string_agg(version::text, ',' ORDER BY version) "
                                  "FROM schema_migrations"), ",".join(map(str, versions)))

    def test_servers_starting_together_migrate_once(self):
        db = self.new_database("together")
        versions = migration_versions()
        servers = [self.start_server(db.url, name=f"replica{i}") for i in range(3)]
        clients = [s.wait_ready() for s in servers]
        applied = [int(l["version"]) for s in servers for l in s.log_lines()
                   if l.get("msg") == "migration applied"]
        self.assertEqual(sorted(applied), versions, "each migration applied once, by one replica")
        self.assertEqual(db.query("SELECT count(*), count(DISTINCT version) FROM schema_migrations"),
                         f"{len(versions)}|{len(versions)}")
        for i, c in enumerate(clients):
            self.ok(c.call("RegisterDevice", {"device": {"commId": f"replica-{i}"}}), f"replica {i}")
        for c in clients:
            body = self.ok(c.call("ListDevices", {}))
            self.assertEqual([d["commId"] for d in body["devices"]],
                             ["replica-0", "replica-1", "replica-2"])
        for s in servers:
            s.terminate()
        for s in servers:
            self.assertEqual(s.wait_exit(), 0, s.describe())


if __name__ == "__main__":
    unittest.main()
