"""The mosquitto plugin (fleetca_auth.so) in a real mosquitto from Debian, following a real
fleetca-server over mutual TLS with its broker identity, tried with clients no one here
wrote: mosquitto_pub and mosquitto_sub, and python3-paho-mqtt for MQTT v5 reason codes.

What the issue asks: a device publishes on its own topic; another device's topic is denied
for publish and subscribe (v5 reason code 135); CN != client id, an unknown CA, a suspended
device, a revoked certificate are refused; a connected subscriber is disconnected within a
second of its certificate's revocation; with fleetca stopped the policy is still enforced; a
broker restarted while fleetca is down loads its cached policy; fleetca back, the stream
resumes from its revision; a watcher identity subscribes to everything and cannot publish.
"""

import os
import re
import signal
import subprocess
import threading
import time
import unittest

import paho.mqtt.client as mqtt

from fleetca_e2e import SERVER, _die_with_parent
from test_issuance import MOSQUITTO_PUB, MOSQUITTO_SUB, Mosquitto, read, write
from test_security import IDENTITY, SecurityTestCase

PLUGIN = os.environ.get("FLEETCA_PLUGIN") or os.path.join(
    os.path.dirname(os.path.dirname(SERVER)), "plugin", "fleetca_auth.so")
DEPLOY_CONF = os.path.join(os.environ.get("FLEETCA_SOURCE_DIR", os.path.join(
    os.path.dirname(__file__), "..", "..")), "deploy", "mosquitto-plugin.conf")
ACL = "fleetca.v1.AclService"
REVOCATION = "fleetca.v1.RevocationService"
NOT_AUTHORIZED = 135  # MQTT v5 reason code 0x87


class MqttSession:
    """A paho-mqtt MQTT v5 client over TLS with a client certificate: CONNACK, SUBACK and
    messages recorded, disconnects noticed."""

    def __init__(self, port, cafile, cert, key, client_id):
        self.connack = None
        self.suback = {}
        self.messages = []
        self.disconnected_at = None
        self.connected = threading.Event()
        self.gone = threading.Event()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.tls_set(ca_certs=cafile, certfile=cert, keyfile=key)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = lambda c, u, m: self.messages.append(
            (m.topic, m.payload.decode()))
        self.client.on_disconnect = self._on_disconnect
        self.client.connect("localhost", port, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason, properties):
        self.connack = reason.value
        self.connected.set()

    def _on_subscribe(self, client, userdata, mid, reasons, properties):
        self.suback[mid] = [r.value for r in reasons]
        self._subscribed.set()

    def _on_disconnect(self, client, userdata, reason, properties=None):
        if self.disconnected_at is None:
            self.disconnected_at = time.monotonic()
        self.gone.set()
        client.loop_stop() if threading.current_thread() is not client._thread else None

    def wait_connack(self, timeout=20):
        if not self.connected.wait(timeout) and not self.gone.is_set():
            raise AssertionError("no CONNACK")
        return self.connack

    def subscribe(self, topic, timeout=20):
        """SUBSCRIBE with QoS 1; returns the SUBACK's reason codes."""
        self._subscribed.clear()
        _, mid = self.client.subscribe(topic, qos=1)
        if not self._subscribed.wait(timeout):
            raise AssertionError(f"no SUBACK for {topic}")
        return self.suback[mid]

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


class PluginTestCase(SecurityTestCase):
    """The world of a plugin test (a TLS fleetca, a broker identity, mosquitto with the
    plugin) and its helpers, without tests: other modules build on it without running
    PluginTest's tests again."""

    def setUp(self):
        super().setUp()
        self.assertTrue(os.path.exists(PLUGIN), f"{PLUGIN} not built")

    # -- the world of one test -----------------------------------------------------------

    def start_world(self, label, mode="stream", user="root"):
        """A TLS fleetca with a broker mqtt-1, its identity's credential for the plugin, and
        a mosquitto with the plugin in this mode."""
        self.db, self.server, self.admin = self.serve_tls(label)
        self.register_broker(self.admin, "mqtt-1", dns=["localhost"], ips=["127.0.0.1"])
        body = self.ok(self.admin.call("IssueIdentity", {
            "name": "mqtt-1", "role": "IDENTITY_ROLE_BROKER",
            "generateKeyAlgorithm": "KEY_ALGORITHM_ECDSA_P256"}, service=IDENTITY))
        ident = os.path.join(self.tmpdir, "plugin")
        os.makedirs(ident, exist_ok=True)
        self.plugin_cert = write(os.path.join(ident, "mqtt-1.crt"),
                                 body["certificate"]["certificatePem"] +
                                 body["certificate"]["chainPem"])
        self.plugin_key = write(os.path.join(ident, "mqtt-1.key"), body["privateKeyPem"],
                                mode=0o600)
        self.cache_dir = os.path.join(self.tmpdir, "plugin-cache")
        os.makedirs(self.cache_dir, exist_ok=True)
        # The broker's own TLS certificate, and what clients verify it with.
        broker_key, broker_csr = self.pki.csr("broker", "/CN=localhost")
        self.broker_cert = self.ok(self.sign_broker(self.admin, "mqtt-1", broker_csr))["certificate"]
        self.broker_key = broker_key
        self.servers_ca = write(self.pki.path("server-ca.pem"), self.trust_bundle(
            self.admin, "TRUST_BUNDLE_SCOPE_SERVER_AUTH")["bundlePem"])
        # Clients: fleetca's client CAs, and a foreign CA mosquitto's TLS accepts too (so that
        # the plugin, not TLS, must refuse its certificates).
        foreign_key, foreign_cert = self.pki.self_signed_ca("foreign", "/CN=Foreign Devices CA")
        self.foreign = (foreign_key, foreign_cert)
        self.clients_ca = self.trust_bundle(
            self.admin, "TRUST_BUNDLE_SCOPE_CLIENT_AUTH")["bundlePem"] + read(foreign_cert)
        if user != "root":
            # What the mosquitto user reads or writes after the privilege drop.
            import pwd
            account = pwd.getpwnam(user)
            os.chmod(self.tmpdir, 0o755)
            for path in (self.plugin_key, self.cache_dir):
                os.chown(path, account.pw_uid, account.pw_gid)
        self.mosq = self.start_mosquitto(mode, user)

    def start_mosquitto(self, mode="stream", user="root"):
        """mosquitto configured by the example deploy/mosquitto-plugin.conf, with this test's
        paths, ports and shorter intervals: the example is what is tested."""
        def config(port, cafile, certfile, keyfile):
            values = {
                "listener": f"{port} 127.0.0.1", "cafile": cafile, "certfile": certfile,
                "keyfile": keyfile, "plugin": PLUGIN, "persistence": "false",
                "log_dest": "stderr", "plugin_opt_mode": mode,
                "plugin_opt_server": f"localhost:{self.server.port}",
                "plugin_opt_tls_ca": self.admin.tls["cacert"],
                "plugin_opt_tls_cert": self.plugin_cert, "plugin_opt_tls_key": self.plugin_key,
                "plugin_opt_cache_dir": self.cache_dir, "plugin_opt_cache_interval": "1",
                "plugin_opt_heartbeat_interval": "1",
            }
            lines, seen = [], set()
            for line in read(DEPLOY_CONF).splitlines():
                if not line.strip() or line.startswith("#"):
                    continue
                key, _, value = line.partition(" ")
                if key in ("persistence_location", "log_type"):
                    continue
                seen.add(key)
                lines.append(f"{key} {values.get(key, value)}")
            lines.append("log_type all")
            missing = set(values) - seen
            self.assertFalse(missing, f"{DEPLOY_CONF} lacks {missing}")
            return lines

        mosq = Mosquitto(os.path.join(self.tmpdir, "mosquitto"), self.clients_ca,
                         self.broker_cert["certificatePem"] + self.broker_cert["chainPem"],
                         self.broker_key, config=config, user=user)
        self.addCleanup(mosq.close)
        return mosq

    def wait_mosq_log(self, needle, timeout=30, since=0):
        deadline = time.monotonic() + timeout
        while needle not in self.mosq.log_text()[since:]:
            self.assertLess(time.monotonic(), deadline,
                            f"mosquitto never logged {needle!r}:\n{self.mosq.log_text()}")
            time.sleep(0.05)

    def device(self, comm_id, register=True):
        """A registered device with a certificate: (cert path, key path)."""
        key, cert = self.new_device_cert(self.admin, comm_id, register=register)
        return write(self.pki.path(comm_id + ".crt"), cert["certificatePem"]), key, cert

    def foreign_device(self, comm_id):
        key, csr = self.pki.csr(comm_id + "-foreign", f"/CN={comm_id}")
        pem = self.pki.sign(comm_id + "-foreign", csr, self.foreign[1], self.foreign[0], [
            "basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature",
            "extendedKeyUsage=clientAuth"])
        return write(self.pki.path(comm_id + "-foreign.crt"), pem), key

    def pub(self, cert, key, client_id, topic, message, v5=True):
        cmd = [MOSQUITTO_PUB, "-h", "localhost", "-p", str(self.mosq.port), "--cafile",
               self.servers_ca, "--cert", cert, "--key", key, "-i", client_id, "-t", topic,
               "-m", message, "-q", "1"]
        if v5:
            cmd += ["-V", "mqttv5"]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)

    def session(self, cert, key, client_id):
        s = MqttSession(self.mosq.port, self.servers_ca, cert, key, client_id)
        self.addCleanup(s.close)
        return s

    def subscriber(self, cert, key, client_id, topic):
        """mosquitto_sub (v5, QoS 1) printing what it receives; returns (process, lines)."""
        sub = subprocess.Popen(
            [MOSQUITTO_SUB, "-h", "localhost", "-p", str(self.mosq.port), "--cafile",
             self.servers_ca, "--cert", cert, "--key", key, "-i", client_id, "-t", topic,
             "-v", "-q", "1", "-V", "mqttv5"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            preexec_fn=_die_with_parent)
        self.addCleanup(lambda: (sub.kill(), sub.wait(), sub.stdout.close()))
        lines = []
        threading.Thread(target=lambda: lines.extend(sub.stdout), daemon=True).start()
        return sub, lines

    def delivered(self, cert, key, client_id, topic, message, lines, timeout=20):
        """Publishes until `message` shows among the subscriber's lines."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.pub(cert, key, client_id, topic, message)
            self.assertEqual(r.returncode, 0, f"{r.stdout}{r.stderr}\n{self.mosq.log_text()}")
            end = time.monotonic() + 1
            while time.monotonic() < end:
                if f"{topic} {message}\n" in lines:
                    return
                time.sleep(0.05)
            self.assertLess(time.monotonic(), deadline,
                            f"{message} never delivered; got {lines}\n{self.mosq.log_text()}")

    def assert_publish_denied(self, cert, key, client_id, topic):
        r = self.pub(cert, key, client_id, topic, "denied?")
        self.assertIn("Not authorized", r.stdout + r.stderr,
                      f"publish to {topic} by {client_id}: {r}\n{self.mosq.log_text()}")

    def assert_refused(self, cert, key, client_id, reason, timeout=20):
        """CONNECT refused with reason 135 and `reason` in the broker's log. Retried: a
        change made just before reaches the broker within a stream's latency."""
        deadline = time.monotonic() + timeout
        pattern = rf"connection refused client_id={re.escape(client_id)} .*reason={reason}"
        while True:
            since = len(self.mosq.log_text())
            s = MqttSession(self.mosq.port, self.servers_ca, cert, key, client_id)
            try:
                code = s.wait_connack()
            finally:
                s.close()
            if code == NOT_AUTHORIZED and re.search(pattern, self.mosq.log_text()[since:]):
                return
            self.assertLess(time.monotonic(), deadline,
                            f"{client_id}: CONNACK {code}, not refused for {reason}:\n"
                            + self.mosq.log_text())
            time.sleep(0.2)


class PluginTest(PluginTestCase):
    # -- tests ---------------------------------------------------------------------------

    def test_policy_is_enforced_in_the_broker(self):
        self.start_world("plugin-policy")
        cert_a, key_a, _ = self.device("imei-a")
        cert_b, key_b, _ = self.device("imei-b")
        # A watcher identity (operators CA, role MQTT_CLIENT) with the built-in watcher profile.
        body = self.ok(self.admin.call("IssueIdentity", {
            "name": "watch-1", "role": "IDENTITY_ROLE_MQTT_CLIENT",
            "generateKeyAlgorithm": "KEY_ALGORITHM_ECDSA_P256"}, service=IDENTITY))
        cert_w = write(self.pki.path("watch-1.crt"), body["certificate"]["certificatePem"])
        key_w = write(self.pki.path("watch-1.key"), body["privateKeyPem"], mode=0o600)
        self.ok(self.admin.call("AssignAclProfile", {"assignment": {
            "subjectType": "ACL_SUBJECT_TYPE_IDENTITY", "subjectId": "watch-1",
            "profileName": "watcher"}}, service=ACL))
        self.wait_mosq_log("snapshot swapped in")

        # The watcher subscribes to everything; imei-a publishes on its own topic.
        sub, lines = self.subscriber(cert_w, key_w, "watch-1", "#")
        self.delivered(cert_a, key_a, "imei-a", "devices/imei-a/up", "own-1", lines)
        # Another device's topic: PUBLISH denied with reason 135, never delivered.
        self.assert_publish_denied(cert_a, key_a, "imei-a", "devices/imei-b/cmd")
        self.delivered(cert_a, key_a, "imei-a", "devices/imei-a/up", "own-2", lines)
        self.assertNotIn("devices/imei-b/cmd denied?\n", lines)
        # SUBSCRIBE to another device's topic: SUBACK 135; to its own: granted.
        s = self.session(cert_a, key_a, "imei-a")
        self.assertEqual(s.wait_connack(), 0)
        self.assertEqual(s.subscribe("devices/imei-b/#"), [NOT_AUTHORIZED])
        self.assertEqual(s.subscribe("devices/+/up"), [NOT_AUTHORIZED])
        self.assertEqual(s.subscribe("devices/imei-a/#"), [1])
        # The username is the certificate's, whatever the client sends.
        r = subprocess.run([MOSQUITTO_PUB, "-h", "localhost", "-p", str(self.mosq.port),
                            "--cafile", self.servers_ca, "--cert", cert_b, "--key", key_b,
                            "-i", "imei-b", "-u", "imei-a", "-t", "devices/imei-a/up",
                            "-m", "spoof", "-q", "1", "-V", "mqttv5"],
                           capture_output=True, text=True, timeout=60)
        self.assertIn("Not authorized", r.stdout + r.stderr, r)

        # Refusals at CONNECT, each with its reason in the broker's log.
        self.assert_refused(cert_a, key_a, "imei-b", "client_id_mismatch")
        cert_x, key_x = self.foreign_device("imei-x")
        self.register(self.admin, "imei-x")
        self.assert_refused(cert_x, key_x, "imei-x", "untrusted_issuer")
        cert_c, key_c, _ = self.device("imei-c")
        self.ok(self.admin.call("SetDeviceStatus", {"commId": "imei-c",
                                                    "status": "DEVICE_STATUS_SUSPENDED",
                                                    "reason": "e2e"}))
        self.assert_refused(cert_c, key_c, "imei-c", "principal_inactive")
        cert_d, key_d, cert = self.device("imei-d")
        self.ok(self.admin.call("RevokeCertificate", {
            "serial": cert["serial"], "reason": "REVOCATION_REASON_KEY_COMPROMISE"},
            service=REVOCATION))
        self.assert_refused(cert_d, key_d, "imei-d", "certificate_revoked")

        # A profile change reaches the broker without a restart: imei-a may now write to
        # imei-b's command topic.
        self.ok(self.admin.call("CreateAclProfile", {"profile": {
            "name": "peer-b", "rules": [{"topicPattern": "devices/imei-b/cmd",
                                         "access": "ACL_ACCESS_WRITE"}]}}, service=ACL))
        self.ok(self.admin.call("AssignAclProfile", {"assignment": {
            "subjectType": "ACL_SUBJECT_TYPE_DEVICE", "subjectId": "imei-a",
            "profileName": "peer-b"}}, service=ACL))
        self.delivered(cert_a, key_a, "imei-a", "devices/imei-b/cmd", "granted", lines)
        # The watcher publishes nothing (last: its publisher takes over the subscriber's
        # session, both being watch-1).
        self.assert_publish_denied(cert_w, key_w, "watch-1", "devices/imei-a/cmd")
        # SIGHUP (mosquitto reloads its configuration and TLS files): the plugin carries on.
        self.mosq.proc.send_signal(signal.SIGHUP)
        self.wait_mosq_log("Reloading config")
        self.assert_publish_denied(cert_a, key_a, "imei-a", "devices/imei-b/up")
        self.assert_refused(cert_a, key_a, "imei-b", "client_id_mismatch")
        self.assertIsNone(self.mosq.proc.poll())


    def connected_subscriber(self, cert, key, client_id, topic):
        s = self.session(cert, key, client_id)
        self.assertEqual(s.wait_connack(), 0, self.mosq.log_text())
        self.assertEqual(s.subscribe(topic), [1])
        return s

    def assert_kicked_within_a_second(self, session, change, what):
        """Makes `change` (an API call) and checks the session is disconnected within a
        second of the call's return."""
        started = time.monotonic()
        change()
        returned = time.monotonic()
        self.assertTrue(session.gone.wait(10), f"{what}: still connected\n" + self.mosq.log_text())
        elapsed = session.disconnected_at - returned
        self.assertLess(elapsed, 1.0, f"{what}: disconnected {elapsed:.3f} s after the call "
                        f"returned (the call took {returned - started:.3f} s)")
        return elapsed

    def test_connected_clients_are_disconnected_when_revoked_suspended_or_narrowed(self):
        self.start_world("plugin-kick")
        cert_a, key_a, issued_a = self.device("imei-a")
        cert_b, key_b, _ = self.device("imei-b")
        cert_c, key_c, _ = self.device("imei-c")
        self.ok(self.admin.call("CreateAclProfile", {"profile": {
            "name": "telemetry", "rules": [{"topicPattern": "telemetry/%c",
                                            "access": "ACL_ACCESS_READWRITE"}]}}, service=ACL))
        self.ok(self.admin.call("AssignAclProfile", {"assignment": {
            "subjectType": "ACL_SUBJECT_TYPE_DEVICE", "subjectId": "imei-c",
            "profileName": "telemetry"}}, service=ACL))
        self.wait_mosq_log("snapshot swapped in")
        a = self.connected_subscriber(cert_a, key_a, "imei-a", "devices/imei-a/#")
        b = self.connected_subscriber(cert_b, key_b, "imei-b", "devices/imei-b/#")
        c = self.connected_subscriber(cert_c, key_c, "imei-c", "telemetry/imei-c")

        # A right granted: nobody is disconnected for it.
        self.ok(self.admin.call("CreateAclProfile", {"profile": {
            "name": "extra", "rules": [{"topicPattern": "extra/%c",
                                        "access": "ACL_ACCESS_WRITE"}]}}, service=ACL))
        self.ok(self.admin.call("AssignAclProfile", {"assignment": {
            "subjectType": "ACL_SUBJECT_TYPE_ALL_DEVICES", "profileName": "extra"}},
            service=ACL))

        revoked = self.assert_kicked_within_a_second(
            a, lambda: self.ok(self.admin.call("RevokeCertificate", {
                "serial": issued_a["serial"], "reason": "REVOCATION_REASON_KEY_COMPROMISE"},
                service=REVOCATION)), "revoked")
        suspended = self.assert_kicked_within_a_second(
            b, lambda: self.ok(self.admin.call("SetDeviceStatus", {
                "commId": "imei-b", "status": "DEVICE_STATUS_SUSPENDED", "reason": "e2e"})),
            "suspended")
        narrowed = self.assert_kicked_within_a_second(
            c, lambda: self.ok(self.admin.call("UnassignAclProfile", {"assignment": {
                "subjectType": "ACL_SUBJECT_TYPE_DEVICE", "subjectId": "imei-c",
                "profileName": "telemetry"}}, service=ACL)), "a right removed")
        # The client sees its connection closed a moment before the broker's log is written.
        self.wait_mosq_log("disconnecting client client_id=imei-a reason=certificate")
        self.wait_mosq_log("disconnecting client client_id=imei-b reason=device imei-b is SUSPENDED")
        self.wait_mosq_log("disconnecting client client_id=imei-c reason=the ACL rules of imei-c "
                           "lost a right")
        # Only the three: nobody was disconnected for the right granted.
        self.assertEqual(self.mosq.log_text().count("disconnecting client"), 3, self.mosq.log_text())
        print(f"\n  disconnect after the call returned: revoked {revoked:.3f} s, suspended "
              f"{suspended:.3f} s, right removed {narrowed:.3f} s")
        # And they cannot come back; imei-c can, under its new rules.
        self.assert_refused(cert_a, key_a, "imei-a", "certificate_revoked")
        self.assert_refused(cert_b, key_b, "imei-b", "principal_inactive")
        again = self.session(cert_c, key_c, "imei-c")
        self.assertEqual(again.wait_connack(), 0)
        self.assertEqual(again.subscribe("telemetry/imei-c"), [NOT_AUTHORIZED])

    def test_fleetca_down_cached_policy_and_resume(self):
        self.start_world("plugin-down")
        # A fleet large enough that the cache spans many messages (1,024 changes each).
        self.ok(self.admin.call("BatchRegisterDevices", {"devices": [
            {"commId": f"fleet-{i:05d}"} for i in range(3000)]}))
        cert_a, key_a, _ = self.device("imei-a")
        cert_b, key_b, _ = self.device("imei-b")
        self.ok(self.admin.call("AssignAclProfile", {"assignment": {
            "subjectType": "ACL_SUBJECT_TYPE_DEVICE", "subjectId": "imei-b",
            "profileName": "watcher"}}, service=ACL))
        cache = os.path.join(self.cache_dir, "fleetca-policy.cache")
        sub, lines = self.subscriber(cert_b, key_b, "imei-b", "#")
        self.delivered(cert_a, key_a, "imei-a", "devices/imei-a/up", "before", lines)
        deadline = time.monotonic() + 20
        while not os.path.exists(cache):
            self.assertLess(time.monotonic(), deadline, "no cache written:\n" + self.mosq.log_text())
            time.sleep(0.1)
        self.assertEqual(os.stat(cache).st_mode & 0o777, 0o600)

        # 1. fleetca stopped: the policy in memory is still enforced.
        port = self.server.port
        self.assertEqual(self.server.stop(), 0)
        self.wait_mosq_log("Watch stream ended")
        self.delivered(cert_a, key_a, "imei-a", "devices/imei-a/up", "fleetca-down", lines)
        self.assert_publish_denied(cert_a, key_a, "imei-a", "devices/imei-b/cmd")
        self.assert_refused(cert_a, key_a, "imei-b", "client_id_mismatch")

        # 2. The broker restarted while fleetca is down: the cached policy is loaded.
        self.mosq.stop()
        mark = len(self.mosq.log_text())
        self.mosq.start()
        self.wait_mosq_log("cached policy loaded", since=mark)
        loaded = re.search(r"cached policy loaded .*revision=(\d+) objects=(\d+)",
                           self.mosq.log_text()[mark:])
        revision = int(loaded.group(1))
        self.assertGreater(revision, 0)
        self.assertGreater(int(loaded.group(2)), 3000)
        sub.kill()  # mosquitto_sub reconnects by itself: one imei-b at a time
        sub, lines = self.subscriber(cert_b, key_b, "imei-b", "#")
        self.delivered(cert_a, key_a, "imei-a", "devices/imei-a/up", "from-cache", lines)
        self.assert_publish_denied(cert_a, key_a, "imei-a", "devices/imei-b/cmd")

        # A corrupt cache is ignored whole (with a log line), never half-applied: the broker
        # then has no policy and refuses everyone (admit_without_policy is off).
        self.mosq.stop()
        sub.kill()
        good = read(cache, binary=True)
        write(cache, good[:len(good) // 2], mode=0o600)
        mark = len(self.mosq.log_text())
        self.mosq.start()
        self.wait_mosq_log("cached policy ignored", since=mark)
        self.assert_refused(cert_a, key_a, "imei-a", "no_policy")
        self.mosq.stop()
        write(cache, good, mode=0o600)
        mark = len(self.mosq.log_text())
        self.mosq.start()
        self.wait_mosq_log("cached policy loaded", since=mark)

        # 3. fleetca back on the same address: the stream resumes from the cached revision,
        # and changes made since reach the broker.
        self.server = self.start_server(self.db.url, tls=self.admin.tls,
                                        listen=f"127.0.0.1:{port}",
                                        args=[f"--tls_dir={self.tmpdir}"])
        self.admin = self.server.wait_ready()
        established = f"Watch stream established since_revision={revision}"
        self.wait_mosq_log(established, since=mark)
        mark = self.mosq.log_text().index(established, mark)
        sub.kill()
        sub, lines = self.subscriber(cert_b, key_b, "imei-b", "#")
        self.delivered(cert_a, key_a, "imei-a", "devices/imei-a/up", "resumed", lines)
        self.ok(self.admin.call("SetDeviceStatus", {"commId": "imei-a",
                                                    "status": "DEVICE_STATUS_SUSPENDED",
                                                    "reason": "e2e"}))
        self.assert_refused(cert_a, key_a, "imei-a", "principal_inactive")
        self.assertNotIn("snapshot begins", self.mosq.log_text()[mark:],
                         "a resume, not a new snapshot")


    def test_query_mode(self):
        """plugin_opt_mode query: AuthorizeConnect per CONNECT under a deadline, ACL checks
        from the rules it returns; fail closed when fleetca does not answer."""
        self.start_world("plugin-query", mode="query")
        cert_a, key_a, _ = self.device("imei-a")
        cert_b, key_b, _ = self.device("imei-b")
        cert_c, key_c, _ = self.device("imei-c")
        self.ok(self.admin.call("AssignAclProfile", {"assignment": {
            "subjectType": "ACL_SUBJECT_TYPE_DEVICE", "subjectId": "imei-b",
            "profileName": "watcher"}}, service=ACL))
        sub, lines = self.subscriber(cert_b, key_b, "imei-b", "#")
        self.delivered(cert_a, key_a, "imei-a", "devices/imei-a/up", "query-1", lines)
        self.assert_publish_denied(cert_a, key_a, "imei-a", "devices/imei-b/cmd")
        self.assert_refused(cert_a, key_a, "imei-b", "client_id_mismatch")
        self.ok(self.admin.call("SetDeviceStatus", {"commId": "imei-c",
                                                    "status": "DEVICE_STATUS_SUSPENDED",
                                                    "reason": "e2e"}))
        self.assert_refused(cert_c, key_c, "imei-c", "principal_inactive")
        self.assertIn("mode=query", self.mosq.log_text())
        self.assertNotIn("opening Watch", self.mosq.log_text())
        # fleetca gone: a client with no fresh cached answer is refused at once (fail
        # closed), and the broker stays responsive.
        self.assertEqual(self.server.stop(), 0)
        started = time.monotonic()
        self.assert_refused(cert_c, key_c, "imei-c", "fleetca_unavailable")
        self.assertLess(time.monotonic() - started, 10)


    @unittest.skipUnless(os.geteuid() == 0, "needs root to let mosquitto drop to its user")
    def test_after_the_privilege_drop(self):
        """mosquitto started as root drops to the mosquitto user after reading its
        configuration: the plugin's threads, TLS files and cache work as that user."""
        self.start_world("plugin-drop", user="mosquitto")
        cert_a, key_a, _ = self.device("imei-a")
        cert_b, key_b, _ = self.device("imei-b")
        self.ok(self.admin.call("AssignAclProfile", {"assignment": {
            "subjectType": "ACL_SUBJECT_TYPE_DEVICE", "subjectId": "imei-b",
            "profileName": "watcher"}}, service=ACL))
        sub, lines = self.subscriber(cert_b, key_b, "imei-b", "#")
        self.delivered(cert_a, key_a, "imei-a", "devices/imei-a/up", "as-mosquitto", lines)
        self.assert_publish_denied(cert_a, key_a, "imei-a", "devices/imei-b/cmd")
        cache = os.path.join(self.cache_dir, "fleetca-policy.cache")
        deadline = time.monotonic() + 20
        while not os.path.exists(cache):
            self.assertLess(time.monotonic(), deadline, "no cache written:\n" + self.mosq.log_text())
            time.sleep(0.1)
        import pwd
        self.assertEqual(pwd.getpwuid(os.stat(cache).st_uid).pw_name, "mosquitto")
        self.assertIn("Watch stream established", self.mosq.log_text())


if __name__ == "__main__":
    unittest.main()
