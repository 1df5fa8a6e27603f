"""Issuance, end to end, checked with tools no one here wrote: the openssl CLI makes the keys
and CSRs and verifies what fleetca issues, and a real mosquitto (Debian's) with a fleetca
broker certificate accepts mosquitto_pub with a fleetca device certificate and refuses
certificates from anyone else.

This module also holds the helpers of the other issuance modules (test_issuance_inputs,
test_ca_hierarchy): IssuanceTestCase, Pki (openssl CLI) and Mosquitto.
"""

import base64
import datetime
import hashlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
import unittest

from fleetca_e2e import E2ETestCase, _die_with_parent, free_port, parallel

CA = "fleetca.v1.CertificateAuthorityService"
ISSUANCE = "fleetca.v1.IssuanceService"
BROKERS = "fleetca.v1.BrokerSyncService"

DAY = 86400
MAX_CSR_BYTES = 16 * 1024
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"  # /usr/sbin: not in every PATH
MOSQUITTO_PUB = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"
MOSQUITTO_SUB = shutil.which("mosquitto_sub") or "/usr/bin/mosquitto_sub"

# openssl req options for each kind of subject key.
KEY_SPECS = {
    "p256": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    "p384": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
    "p521": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-521"],
    "secp256k1": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp256k1"],
    "rsa1024": ["-newkey", "rsa:1024"],
    "rsa2048": ["-newkey", "rsa:2048"],
    "rsa3072": ["-newkey", "rsa:3072"],
    "rsa4096": ["-newkey", "rsa:4096"],
    "ed25519": ["-newkey", "ed25519"],
    "ed448": ["-newkey", "ed448"],
}
KEY_ALGORITHM_ENUM = {
    "p256": "KEY_ALGORITHM_ECDSA_P256", "p384": "KEY_ALGORITHM_ECDSA_P384",
    "rsa2048": "KEY_ALGORITHM_RSA_2048", "rsa3072": "KEY_ALGORITHM_RSA_3072",
    "rsa4096": "KEY_ALGORITHM_RSA_4096", "ed25519": "KEY_ALGORITHM_ED25519",
}

# The extensions every fleetca end-entity certificate carries, by `openssl x509 -text` name.
BASIC_CONSTRAINTS = "X509v3 Basic Constraints"
KEY_USAGE = "X509v3 Key Usage"
EXT_KEY_USAGE = "X509v3 Extended Key Usage"
SKI = "X509v3 Subject Key Identifier"
AKI = "X509v3 Authority Key Identifier"
CRL_DP = "X509v3 CRL Distribution Points"
AIA = "Authority Information Access"
SAN = "X509v3 Subject Alternative Name"


def run(cmd, input=None, timeout=120, check=True, env=None):
    """Runs a tool; returns the CompletedProcess (text). check=True fails with its output."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    r = subprocess.run(cmd, input=input, capture_output=True, text=isinstance(input, (str, type(None))),
                       timeout=timeout, env=full_env,
                       stdin=None if input is not None else subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited with {r.returncode}:\n{r.stdout}\n{r.stderr}")
    return r


def write(path, data, mode=0o644):
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    os.chmod(path, mode)
    return path


def read(path, binary=False):
    with open(path, "rb" if binary else "r") as f:
        return f.read()


def pem_blocks(text):
    return re.findall(r"-----BEGIN CERTIFICATE-----\n.*?-----END CERTIFICATE-----\n?", text, re.S)


def normalize_pem(block):
    return block.strip() + "\n"


def openssl_date(text):
    """'notAfter=Nov 23 17:42:04 2027 GMT' -> aware datetime."""
    value = text.strip().split("=", 1)[1]
    return datetime.datetime.strptime(value, "%b %d %H:%M:%S %Y GMT").replace(
        tzinfo=datetime.timezone.utc)


def rfc3339(text):
    """'2027-11-23T17:42:04.844822Z' -> aware datetime."""
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


class Pki:
    """Keys, CSRs and certificates made with the openssl CLI, in one folder."""

    def __init__(self, folder):
        self.dir = folder
        os.makedirs(folder, exist_ok=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def csr(self, name, subject, key="p256", addext=(), der=False):
        """A new key and CSR; returns (key path, CSR: PEM text, or DER bytes)."""
        key_path = self.path(name + ".key")
        csr_path = self.path(name + (".csr.der" if der else ".csr"))
        cmd = ["openssl", "req", "-new", *KEY_SPECS[key], "-nodes", "-keyout", key_path,
               "-out", csr_path, "-subj", subject]
        for e in addext:
            cmd += ["-addext", e]
        if der:
            cmd += ["-outform", "DER"]
        run(cmd)
        os.chmod(key_path, 0o644)  # a test key, read by mosquitto whatever its user
        return key_path, read(csr_path, binary=der)

    def csr_from_key(self, name, key_path, subject, addext=()):
        csr_path = self.path(name + ".csr")
        cmd = ["openssl", "req", "-new", "-key", key_path, "-out", csr_path, "-subj", subject]
        for e in addext:
            cmd += ["-addext", e]
        run(cmd)
        return read(csr_path)

    def csr_subject(self, csr_pem):
        return run(["openssl", "req", "-noout", "-subject", "-nameopt", "RFC2253"],
                   input=csr_pem).stdout.rstrip("\n")

    def self_signed_ca(self, name, subject, key="p256", days=3650):
        """A root CA certificate of our own (not fleetca's); returns (key path, cert path)."""
        key_path, cert_path = self.path(name + ".key"), self.path(name + ".crt")
        run(["openssl", "req", "-x509", *KEY_SPECS[key], "-nodes", "-keyout", key_path,
             "-out", cert_path, "-subj", subject, "-days", str(days),
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-addext", "subjectKeyIdentifier=hash"])
        os.chmod(key_path, 0o644)
        return key_path, cert_path

    def sign(self, name, csr_pem, ca_cert, ca_key, extensions, days=365):
        """Signs a CSR with `openssl x509 -req` and an extension file; returns the PEM."""
        csr_path = write(self.path(name + ".to-sign.csr"), csr_pem)
        ext_path = write(self.path(name + ".ext"), "[ext]\n" + "\n".join(extensions) + "\n")
        cert_path = self.path(name + ".crt")
        run(["openssl", "x509", "-req", "-in", csr_path, "-CA", ca_cert, "-CAkey", ca_key,
             "-set_serial", "0x" + secrets.token_hex(16), "-days", str(days),
             "-extfile", ext_path, "-extensions", "ext", "-out", cert_path])
        return read(cert_path)

    def verify(self, cert_pem, cafile_pem, untrusted_pem=None, purpose=None, name="verify"):
        """openssl verify; returns the CompletedProcess (check returncode and stdout)."""
        cert = write(self.path(f"{name}.leaf.pem"), cert_pem)
        ca = write(self.path(f"{name}.ca.pem"), cafile_pem)
        cmd = ["openssl", "verify", "-CAfile", ca]
        if untrusted_pem:
            cmd += ["-untrusted", write(self.path(f"{name}.untrusted.pem"), untrusted_pem)]
        if purpose:
            cmd += ["-purpose", purpose]
        cmd.append(cert)
        return run(cmd, check=False)

    def text(self, cert_pem):
        return run(["openssl", "x509", "-noout", "-text"], input=cert_pem).stdout

    def field(self, cert_pem, *options):
        return run(["openssl", "x509", "-noout", *options], input=cert_pem).stdout.strip()


def x509_extensions(text):
    """Parses `openssl x509 -text`: {extension name: (critical, [value lines])}."""
    exts, current, inside = {}, None, False
    for line in text.splitlines():
        if line.strip() == "X509v3 extensions:":
            inside = True
            continue
        if not inside:
            continue
        indent = len(line) - len(line.lstrip(" "))
        if indent <= 8:  # "    Signature Algorithm:" ends the block
            break
        if indent == 12:
            name, _, rest = line.strip().partition(":")
            current = name
            exts[name] = (rest.strip() == "critical", [])
        elif current is not None:
            exts[current][1].append(line.strip())
    return exts


class Mosquitto:
    """A mosquitto broker of the test's own on a loopback port, TLS with a client certificate
    required. Runs as the current user (`user root` when root: mosquitto would otherwise drop
    to the mosquitto user after reading its configuration; the files are world-readable
    anyway)."""

    def __init__(self, folder, cafile_pem, cert_pem, key_path, crl_pem=None, files=None,
                 extra_lines=(), identity_as_username=True, config=None, user="root"):
        """files: {"cafile", "crlfile", "acl_file", "pid_file"} paths kept by someone else
        (fleetca-sync) instead of cafile_pem and crl_pem. extra_lines are appended to the
        configuration (a plugin and its options); identity_as_username=False leaves the
        username to a plugin (mosquitto then calls its BASIC_AUTH). config, when given, is
        called with the listener port, the clients' cafile, the broker's certfile and keyfile
        paths, and returns the whole configuration's lines instead. user: when the tests run
        as root, the user mosquitto runs as after reading its configuration ("mosquitto":
        the privilege drop of a production broker)."""
        for tool in (MOSQUITTO, MOSQUITTO_PUB):
            if not os.access(tool, os.X_OK):
                raise AssertionError(f"{tool} not found: run scripts/deps.sh (Debian packages mosquitto, "
                                     "mosquitto-clients)")
        self.dir = folder
        os.makedirs(folder, exist_ok=True)
        os.chmod(folder, 0o755)
        self.port = free_port()
        files = files or {}
        cafile = files.get("cafile") or write(os.path.join(folder, "clients-ca.pem"), cafile_pem)
        certfile = write(os.path.join(folder, "broker.pem"), cert_pem)
        keyfile = os.path.join(folder, "broker.key")
        shutil.copyfile(key_path, keyfile)
        os.chmod(keyfile, 0o644)
        lines = [
            "per_listener_settings false",
            "persistence false",
            "log_dest stderr",
            "log_type all",
            "allow_anonymous false",
            f"listener {self.port} 127.0.0.1",
            f"cafile {cafile}",
            f"certfile {certfile}",
            f"keyfile {keyfile}",
            "require_certificate true",
        ]
        if identity_as_username:
            lines.append("use_identity_as_username true")
        self.crlfile = files.get("crlfile")
        if crl_pem is not None:
            self.crlfile = write(os.path.join(folder, "crl.pem"), crl_pem)
        if self.crlfile:
            lines.append(f"crlfile {self.crlfile}")
        if files.get("acl_file"):
            lines.append(f"acl_file {files['acl_file']}")
        if files.get("pid_file"):
            lines.append(f"pid_file {files['pid_file']}")
        lines.extend(extra_lines)
        if config is not None:
            lines = config(self.port, cafile, certfile, keyfile)
        if os.geteuid() == 0:
            lines.insert(0, f"user {user}")
        self.conf = write(os.path.join(folder, "mosquitto.conf"), "\n".join(lines) + "\n")
        self.log_path = os.path.join(folder, "mosquitto.log")
        self._log = None
        self.start()

    def start(self):
        """Starts the broker (again, after stop(): same configuration, same port; the log
        is appended to)."""
        if self._log is not None:
            self._log.close()
        self._log = open(self.log_path, "a")
        env = None
        preload = os.environ.get("FLEETCA_MOSQUITTO_PRELOAD")
        if preload:
            # A sanitizer build's plugin: mosquitto itself is not instrumented, so the
            # sanitizer runtime is preloaded (tests/e2e/CMakeLists.txt sets the variable).
            # LeakSanitizer is off for mosquitto: its own allocations at exit are not ours.
            env = dict(os.environ, LD_PRELOAD=preload,
                       ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     preexec_fn=_die_with_parent, env=env)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"mosquitto exited with {self.proc.returncode}:\n"
                                     + self.log_text())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("mosquitto does not listen after 30 s:\n" + self.log_text())
                time.sleep(0.05)

    def log_text(self):
        with open(self.log_path) as f:
            return f.read()

    def reload_crl(self, crl_pem):
        """Replaces the crlfile and sends SIGHUP (mosquitto reloads its TLS files)."""
        write(self.crlfile + ".new", crl_pem)
        os.replace(self.crlfile + ".new", self.crlfile)
        self.proc.send_signal(signal.SIGHUP)

    def publish(self, host, server_ca_path, cert_path, key_path, client_id, topic="fleet/up",
                message=None):
        """mosquitto_pub, QoS 1 (so a PUBACK must come back); returns the CompletedProcess."""
        cmd = [MOSQUITTO_PUB, "-h", host, "-p", str(self.port), "--cafile", server_ca_path,
               "-i", client_id, "-t", topic, "-m", message or "hello from " + client_id,
               "-q", "1"]
        if cert_path:
            cmd += ["--cert", cert_path, "--key", key_path]
        return run(cmd, check=False, timeout=60)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)

    def close(self):
        self.stop()
        self._log.close()


class IssuanceTestCase(E2ETestCase):
    """E2ETestCase with the issuance calls, a Pki folder and row counts."""

    def setUp(self):
        super().setUp()
        self.pki = Pki(os.path.join(self.tmpdir, "pki"))

    def serve(self, label=None, init=True, init_request=None, args=(), env=None):
        """A fresh database and a server on it, the CA initialised unless init=False.
        Returns (db, server, client)."""
        db = self.new_database(label)
        server = self.start_server(db.url, args=list(args), env=env)
        client = server.wait_ready()
        if init:
            body = self.ok(client.call("InitializeHierarchy", init_request or {}, service=CA),
                           "InitializeHierarchy")
            self.assertEqual(sorted(body["createdIssuerIds"]),
                             sorted(i["issuerId"] for i in body["issuers"]), body)
        return db, server, client

    def register(self, client, comm_id, status=None):
        self.ok(client.call("RegisterDevice", {"device": {"commId": comm_id}}), f"RegisterDevice {comm_id}")
        if status:
            self.ok(client.call("SetDeviceStatus", {"commId": comm_id, "status": status,
                                                   "reason": "e2e"}), f"SetDeviceStatus {comm_id}")

    def register_broker(self, client, broker_id, dns=(), ips=()):
        return self.ok(client.call("RegisterBroker", {"broker": {
            "brokerId": broker_id, "allowedDnsNames": list(dns), "allowedIpAddresses": list(ips)}},
            service=BROKERS), f"RegisterBroker {broker_id}")["broker"]

    def sign_call(self, client, comm_id, csr, request_id=None, **extra):
        """SignDeviceCsr with a PEM (str) or DER (bytes) CSR; returns the CallResult."""
        req = {"commId": comm_id, "requestId": request_id or "req-" + secrets.token_hex(8)}
        if isinstance(csr, bytes):
            req["csrDer"] = base64.b64encode(csr).decode()
        elif csr is not None:
            req["csrPem"] = csr
        if request_id == "":
            del req["requestId"]
        req.update(extra)
        return client.call("SignDeviceCsr", req, service=ISSUANCE)

    def sign(self, client, comm_id, csr, request_id=None, **extra):
        """SignDeviceCsr that must succeed; returns the Certificate."""
        body = self.ok(self.sign_call(client, comm_id, csr, request_id, **extra),
                       f"SignDeviceCsr {comm_id}")
        self.assertFalse(body["replayed"])
        return body["certificate"]

    def sign_broker(self, client, broker_id, csr, request_id=None, **extra):
        req = {"brokerId": broker_id, "csrPem": csr,
               "requestId": request_id or "breq-" + secrets.token_hex(8)}
        req.update(extra)
        return client.call("SignBrokerCsr", req, service=ISSUANCE)

    def new_device_cert(self, client, comm_id, key="p256", register=True, **extra):
        """Registers comm_id, makes a key and CSR, signs it: (key path, Certificate)."""
        if register:
            self.register(client, comm_id)
        key_path, csr = self.pki.csr(comm_id.replace(":", "_"), f"/CN={comm_id}", key=key)
        return key_path, self.sign(client, comm_id, csr, **extra)

    def count(self, db, table="certificates", where="true"):
        return int(db.query(f"SELECT count(*) FROM {table} WHERE {where}"))

    def trust_bundle(self, client, scope):
        return self.ok(client.call("GetTrustBundle", {"scope": scope}, service=CA), f"GetTrustBundle {scope}")

    def issuer(self, client, issuer_id):
        return self.ok(client.call("GetIssuer", {"issuerId": issuer_id}, service=CA),
                       f"GetIssuer {issuer_id}")["issuer"]

    def assertVerifies(self, cert_pem, cafile_pem, untrusted_pem=None, purpose=None, context=""):
        r = self.pki.verify(cert_pem, cafile_pem, untrusted_pem, purpose)
        self.assertEqual(r.returncode, 0, f"{context}: openssl verify failed:\n{r.stdout}{r.stderr}")
        self.assertTrue(r.stdout.strip().endswith(": OK"), r.stdout)

    def assertRefused(self, result, code, field, context=""):
        """The call failed with code, and its message names field."""
        self.assertCode(result, code, context)
        self.assertIn(field, result.message, f"{context}: the message does not name {field!r}")


class DoneWhenTest(IssuanceTestCase):
    """The issue's "Done when", as a new user would do it with a reflection client."""

    def test_init_register_sign_verify_connect_to_mosquitto(self):
        db, server, client = self.serve("donewhen", init=False)

        # 1. Init the CA (idempotent: the second call creates nothing and returns the same).
        first = self.ok(client.call("InitializeHierarchy", {}, service=CA), "InitializeHierarchy")
        self.assertEqual(sorted(first["createdIssuerIds"]),
                         ["brokers-1", "devices-1", "operators-1", "root-1"])
        again = self.ok(client.call("InitializeHierarchy", {}, service=CA), "InitializeHierarchy again")
        self.assertEqual(again["createdIssuerIds"], [])
        self.assertEqual({i["issuerId"]: i["sha256Fingerprint"] for i in again["issuers"]},
                         {i["issuerId"]: i["sha256Fingerprint"] for i in first["issuers"]})

        # 2. Register a device; 3. key and CSR with openssl req; 4. sign.
        comm_id = "356938035643809"
        self.register(client, comm_id)
        key_path, csr = self.pki.csr("device", f"/CN={comm_id}")
        cert = self.sign(client, comm_id, csr, request_id="station-7:0001")
        self.assertEqual(cert["commId"], comm_id)
        self.assertEqual(cert["issuerId"], "devices-1")
        self.assertEqual(cert["kind"], "CERTIFICATE_KIND_DEVICE")
        self.assertEqual(cert["status"], "CERTIFICATE_STATUS_ACTIVE")
        self.assertEqual(cert["requestId"], "station-7:0001")
        self.assertEqual(cert["keyAlgorithm"], "KEY_ALGORITHM_ECDSA_P256")
        self.assertEqual(len(pem_blocks(cert["certificatePem"])), 1)
        chain = pem_blocks(cert["chainPem"])
        self.assertEqual(len(chain), 2, "chain: the devices CA, then the root")
        self.assertEqual(normalize_pem(chain[0]), normalize_pem(self.issuer(client, "devices-1")["certificatePem"]))
        self.assertEqual(normalize_pem(chain[1]), normalize_pem(self.issuer(client, "root-1")["certificatePem"]))
        self.assertEqual(self.pki.field(cert["certificatePem"], "-fingerprint", "-sha256")
                         .split("=", 1)[1].replace(":", "").lower(), cert["sha256Fingerprint"])
        self.assertEqual(self.count(db), 1)

        # 5. openssl verify: against the chain as given, and against the root alone with the
        #    intermediate untrusted, as a TLS peer would, for the purpose sslclient.
        self.assertVerifies(cert["certificatePem"], cert["chainPem"], context="-CAfile chainPem")
        self.assertVerifies(cert["certificatePem"], chain[1], untrusted_pem=chain[0],
                            purpose="sslclient", context="root only")
        r = self.pki.verify(cert["certificatePem"], chain[1], untrusted_pem=chain[0], purpose="sslserver")
        self.assertNotEqual(r.returncode, 0, "a device certificate passes as a TLS server:\n" + r.stdout)

        # 6. A broker: registered with its names, a server certificate for them.
        self.register_broker(client, "mqtt-test", dns=["localhost"], ips=["127.0.0.1"])
        broker_key, broker_csr = self.pki.csr("broker", "/CN=localhost")
        broker = self.ok(self.sign_broker(client, "mqtt-test", broker_csr), "SignBrokerCsr")["certificate"]
        self.assertEqual(broker["kind"], "CERTIFICATE_KIND_BROKER")
        self.assertEqual(broker["brokerId"], "mqtt-test")
        self.assertEqual(broker["issuerId"], "brokers-1")
        self.assertEqual(broker["dnsNames"], ["localhost"])
        self.assertEqual(broker["ipAddresses"], ["127.0.0.1"])
        exts = x509_extensions(self.pki.text(broker["certificatePem"]))
        self.assertEqual(exts[EXT_KEY_USAGE][1], ["TLS Web Server Authentication"], exts)
        self.assertEqual(sorted(exts[SAN][1][0].split(", ")), ["DNS:localhost", "IP Address:127.0.0.1"])
        self.assertVerifies(broker["certificatePem"], broker["chainPem"], purpose="sslserver",
                            context="broker certificate")

        client_bundle = self.trust_bundle(client, "TRUST_BUNDLE_SCOPE_CLIENT_AUTH")
        server_bundle = self.trust_bundle(client, "TRUST_BUNDLE_SCOPE_SERVER_AUTH")
        server_ca = write(self.pki.path("server-ca.pem"), server_bundle["bundlePem"])
        self.assertVerifies(cert["certificatePem"], client_bundle["bundlePem"], purpose="sslclient",
                            context="device certificate against the CLIENT_AUTH bundle")

        # 7. mosquitto with that certificate and the CLIENT_AUTH bundle as cafile.
        broker_pem = broker["certificatePem"] + broker["chainPem"]
        mosq = Mosquitto(os.path.join(self.tmpdir, "mosquitto"), client_bundle["bundlePem"],
                         broker_pem, broker_key)
        self.addCleanup(mosq.close)
        cert_path = write(self.pki.path("device.crt"), cert["certificatePem"])

        for host in ("localhost", "127.0.0.1"):  # the DNS and the IP SAN
            r = mosq.publish(host, server_ca, cert_path, key_path, comm_id)
            self.assertEqual(r.returncode, 0, f"mosquitto_pub -h {host} with the fleetca device certificate "
                             f"was refused:\n{r.stdout}{r.stderr}\n--- mosquitto:\n{mosq.log_text()}")
        self.assertIn(f"as {comm_id}", mosq.log_text())
        self.assertIn(f"u'{comm_id}'", mosq.log_text(), "use_identity_as_username: the CN is the username")

        # 8. Refused: a certificate from a foreign CA with the same CN, a self-signed one, a
        #    fleetca broker (serverAuth) certificate used as a client, and no certificate.
        foreign_key, foreign_ca = self.pki.self_signed_ca("foreign-root", "/CN=Foreign Root CA")
        fkey, fcsr = self.pki.csr("foreign-device", f"/CN={comm_id}")
        fcert = write(self.pki.path("foreign-device.crt"), self.pki.sign(
            "foreign-device", fcsr, foreign_ca, foreign_key,
            ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature",
             "extendedKeyUsage=clientAuth"]))
        self_key = self.pki.path("selfsigned.key")
        self_cert = self.pki.path("selfsigned.crt")
        run(["openssl", "req", "-x509", *KEY_SPECS["p256"], "-nodes", "-keyout", self_key,
             "-out", self_cert, "-subj", f"/CN={comm_id}", "-days", "30",
             "-addext", "extendedKeyUsage=clientAuth"])
        broker_cert_path = write(self.pki.path("broker-as-client.crt"), broker["certificatePem"])
        refusals = [
            ("a foreign CA's certificate", fcert, fkey),
            ("a self-signed certificate", self_cert, self_key),
            ("a fleetca broker certificate (EKU serverAuth) as a client", broker_cert_path, broker_key),
            ("no certificate", None, None),
        ]
        for what, c, k in refusals:
            with self.subTest(what):
                r = mosq.publish("localhost", server_ca, c, k, comm_id + "-x")
                self.assertNotEqual(r.returncode, 0, f"mosquitto accepted {what}:\n{mosq.log_text()[-3000:]}")
        self.assertIn("certificate verify failed", mosq.log_text())
        # And the good certificate still works after all that.
        r = mosq.publish("localhost", server_ca, cert_path, key_path, comm_id)
        self.assertEqual(r.returncode, 0, r.stderr)

        # The server told the broker's side nothing secret, and stored nothing twice.
        self.assertEqual(self.count(db), 2)
        self.assertNotIn("PRIVATE KEY", server.log_text())


class CertificateContentTest(IssuanceTestCase):
    """What `openssl x509 -text` shows in an issued device certificate."""

    BASE_URL = "http://pki.fleet.example:8081/fleetca"

    def test_extensions_serial_subject_and_validity(self):
        db, server, client = self.serve(
            "content", args=[f"--public_base_url={self.BASE_URL}/", "--organization=Acme Fleet"])
        comm_id = "SN-2026.A:01"
        self.register(client, comm_id)
        # The CSR asks for more than it gets: another subject, CA:TRUE, other key usages.
        _, csr = self.pki.csr("content", f"/C=XX/O=Evil Corp/OU=Pwn/CN={comm_id}", addext=[
            "basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,digitalSignature",
            "extendedKeyUsage=serverAuth,clientAuth"])
        cert = self.sign(client, comm_id, csr, validity=f"{100 * 365 * DAY}s")
        pem = cert["certificatePem"]
        text = self.pki.text(pem)
        exts = x509_extensions(text)

        self.assertEqual(exts.get(BASIC_CONSTRAINTS), (True, ["CA:FALSE"]), text)
        self.assertEqual(exts.get(KEY_USAGE), (True, ["Digital Signature"]), text)
        self.assertIn(EXT_KEY_USAGE, exts, text)
        self.assertEqual(exts[EXT_KEY_USAGE][1], ["TLS Web Client Authentication"], text)
        self.assertIn(SKI, exts, text)
        self.assertIn(AKI, exts, text)
        self.assertNotIn(SAN, exts, text)
        self.assertFalse(exts[SKI][0] or exts[AKI][0], "key identifiers must not be critical")
        issuer = self.issuer(client, "devices-1")
        issuer_text = self.pki.text(issuer["certificatePem"])
        issuer_ski = x509_extensions(issuer_text)[SKI][1][0]
        self.assertIn(issuer_ski, " ".join(exts[AKI][1]), "AKI is the devices CA's SKI")
        self.assertRegex(exts[SKI][1][0], r"^([0-9A-F]{2}:){19}[0-9A-F]{2}$")
        self.assertIn(f"URI:{self.BASE_URL}/crl/devices-1.crl", exts.get(CRL_DP, (False, []))[1], text)
        self.assertIn(f"CA Issuers - URI:{self.BASE_URL}/ca/devices-1.crt", exts.get(AIA, (False, []))[1], text)
        self.assertEqual(issuer["crlUrl"], f"{self.BASE_URL}/crl/devices-1.crl")
        self.assertEqual(issuer["certificateUrl"], f"{self.BASE_URL}/ca/devices-1.crt")
        self.assertEqual(set(exts), {BASIC_CONSTRAINTS, KEY_USAGE, EXT_KEY_USAGE, SKI, AKI, CRL_DP, AIA},
                         "unexpected extensions:\n" + text)
        self.assertIn("Version: 3 (0x2)", text)

        # Serial: positive, at least 128 bits, the one the API reports.
        serial_hex = self.pki.field(pem, "-serial").split("=", 1)[1]
        self.assertFalse(serial_hex.startswith("-"))
        self.assertGreaterEqual(int(serial_hex, 16).bit_length(), 128, serial_hex)
        self.assertLessEqual(len(serial_hex), 40, "at most 20 octets (RFC 5280)")
        self.assertEqual(int(serial_hex, 16), int(cert["serial"], 16))

        # Subject: built by the CA: exactly CN = comm-ID and the configured O, nothing copied.
        subject = self.pki.field(pem, "-subject", "-nameopt", "RFC2253")
        self.assertEqual(subject, f"subject=CN={comm_id},O=Acme Fleet")
        self.assertEqual(text.count("CN = "), 2, "one CN in the issuer, one in the subject:\n" + text)
        self.assertEqual(cert["subject"], f"CN={comm_id},O=Acme Fleet")

        # Validity: 100 years asked, the device profile's maximum (5 years) given, within the
        # issuer's notAfter; the API reports what the certificate says.
        not_before = openssl_date(self.pki.field(pem, "-startdate"))
        not_after = openssl_date(self.pki.field(pem, "-enddate"))
        issuer_not_after = openssl_date(self.pki.field(issuer["certificatePem"], "-enddate"))
        now = datetime.datetime.now(datetime.timezone.utc)
        self.assertLessEqual(not_after, issuer_not_after)
        self.assertLessEqual(not_after - now, datetime.timedelta(days=5 * 365, minutes=5))
        self.assertGreater(not_after - now, datetime.timedelta(days=5 * 365 - 1))
        self.assertLessEqual(not_before, now)
        self.assertEqual(int(rfc3339(cert["notAfter"]).timestamp()), int(not_after.timestamp()))
        self.assertVerifies(pem, cert["chainPem"], purpose="sslclient")

        # No validity asked: the profile default (365 days).
        _, csr2 = self.pki.csr("content2", f"/CN={comm_id}")
        cert2 = self.sign(client, comm_id, csr2)
        days = (openssl_date(self.pki.field(cert2["certificatePem"], "-enddate")) - now).days
        self.assertIn(days, (364, 365), "default validity")

        # Short validity asked: given.
        _, csr3 = self.pki.csr("content3", f"/CN={comm_id}")
        cert3 = self.sign(client, comm_id, csr3, validity="3600s")
        left = openssl_date(self.pki.field(cert3["certificatePem"], "-enddate")) - now
        self.assertLessEqual(left, datetime.timedelta(hours=1, minutes=1))
        self.assertGreater(left, datetime.timedelta(minutes=50))

        serials = {cert["serial"], cert2["serial"], cert3["serial"]}
        self.assertEqual(len(serials), 3)
        self.assertEqual(self.count(db), 3)

    def test_validity_capped_by_the_issuer_not_after(self):
        # Intermediates of 2 years: a 4-year request (under the profile's 5) ends with the issuer.
        db, server, client = self.serve("issuercap", init_request={"intermediateValidity": f"{2 * 365 * DAY}s"})
        comm_id = "cap-1"
        self.register(client, comm_id)
        _, csr = self.pki.csr("cap", f"/CN={comm_id}")
        cert = self.sign(client, comm_id, csr, validity=f"{4 * 365 * DAY}s")
        issuer = self.issuer(client, "devices-1")
        not_after = openssl_date(self.pki.field(cert["certificatePem"], "-enddate"))
        issuer_not_after = openssl_date(self.pki.field(issuer["certificatePem"], "-enddate"))
        self.assertLessEqual(not_after, issuer_not_after)
        self.assertLess(issuer_not_after - not_after, datetime.timedelta(minutes=1))
        self.assertVerifies(cert["certificatePem"], cert["chainPem"], purpose="sslclient")


class IdempotencyTest(IssuanceTestCase):
    """Nothing doubled: request ids, retries and concurrent retries."""

    def test_retries_and_concurrent_retries_yield_one_certificate(self):
        db, server, client = self.serve("idem")
        comm_id = "idem-1"
        self.register(client, comm_id)
        _, csr = self.pki.csr("idem", f"/CN={comm_id}")

        first = self.ok(self.sign_call(client, comm_id, csr, "rid-1"), "first")
        self.assertFalse(first["replayed"])
        retry = self.ok(self.sign_call(client, comm_id, csr, "rid-1"), "retry")
        self.assertTrue(retry["replayed"])
        self.assertEqual(retry["certificate"]["serial"], first["certificate"]["serial"])
        self.assertEqual(retry["certificate"]["certificatePem"], first["certificate"]["certificatePem"])
        self.assertEqual(retry["certificate"]["chainPem"], first["certificate"]["chainPem"])
        # The same CSR in DER is the same request.
        der = run(["openssl", "req", "-outform", "DER"], input=csr.encode()).stdout
        as_der = self.ok(self.sign_call(client, comm_id, der, "rid-1"), "retry in DER")
        self.assertTrue(as_der["replayed"])
        self.assertEqual(as_der["certificate"]["serial"], first["certificate"]["serial"])
        self.assertEqual(self.count(db), 1)

        # The same id with another CSR: ALREADY_EXISTS, nothing written.
        _, other = self.pki.csr("idem-other", f"/CN={comm_id}")
        r = self.sign_call(client, comm_id, other, "rid-1")
        self.assertRefused(r, "ALREADY_EXISTS", "request_id")
        self.assertEqual(self.count(db), 1)

        # 16 concurrent identical calls with a new id: one certificate, one serial.
        _, csr16 = self.pki.csr("idem16", f"/CN={comm_id}")
        results = parallel([lambda: self.sign_call(client, comm_id, csr16, "rid-16")] * 16, workers=16)
        for r in results:
            self.assertCode(r, "OK", "concurrent identical SignDeviceCsr")
        serials = {r.body["certificate"]["serial"] for r in results}
        self.assertEqual(len(serials), 1, serials)
        self.assertEqual(sum(1 for r in results if not r.body["replayed"]), 1,
                         "exactly one call issued, the others replayed")
        self.assertEqual(self.count(db, where="request_id = 'rid-16'"), 1)
        self.assertEqual(self.count(db), 2)

        # 8 concurrent calls, one id, 8 different CSRs: one wins, 7 ALREADY_EXISTS.
        csrs = [self.pki.csr(f"race{i}", f"/CN={comm_id}")[1] for i in range(8)]
        results = parallel([lambda c=c: self.sign_call(client, comm_id, c, "rid-race") for c in csrs], workers=8)
        codes = sorted(r.code for r in results)
        self.assertEqual(codes, ["ALREADY_EXISTS"] * 7 + ["OK"], results)
        self.assertEqual(self.count(db), 3)

        # 16 concurrent calls with 16 ids: 16 certificates, 16 serials.
        csrs = [self.pki.csr(f"many{i}", f"/CN={comm_id}")[1] for i in range(16)]
        results = parallel([lambda i=i, c=c: self.sign_call(client, comm_id, c, f"rid-many-{i}")
                            for i, c in enumerate(csrs)], workers=16)
        for r in results:
            self.assertCode(r, "OK", "16 different requests")
        self.assertEqual(len({r.body["certificate"]["serial"] for r in results}), 16)
        self.assertEqual(self.count(db), 19)
        self.assertEqual(self.count(db, where="status <> 'issued'"), 0, "a reserved row was left behind")

        # A restarted server still knows the request ids (they are in the database).
        self.assertEqual(server.stop(), 0, server.describe())
        client = self.start_server(db.url, name="restarted").wait_ready()
        again = self.ok(self.sign_call(client, comm_id, csr, "rid-1"), "retry after restart")
        self.assertTrue(again["replayed"])
        self.assertEqual(again["certificate"]["serial"], first["certificate"]["serial"])
        self.assertEqual(self.count(db), 19)


class InventoryTest(IssuanceTestCase):
    """Renewal, GetCertificate, ListCertificates, ListIssuers, GetTrustBundle."""

    def list_all(self, client, page_size, **filters):
        serials, pages, token = [], [], ""
        while True:
            body = self.ok(client.call("ListCertificates", {"pageSize": page_size, "pageToken": token,
                                                            **filters}, service=ISSUANCE),
                           f"ListCertificates page {len(pages)}")
            certs = body["certificates"]
            pages.append(len(certs))
            for c in certs:
                self.assertTrue(c["certificatePem"].startswith("-----BEGIN CERTIFICATE-----"))
                self.assertEqual(c["chainPem"], "", "ListCertificates leaves chain_pem out")
            serials += [c["serial"] for c in certs]
            token = body["nextPageToken"]
            if not token:
                return serials, pages
            self.assertLess(len(pages), 20, "pagination does not end")

    def test_renew_get_list(self):
        db, server, client = self.serve("inventory")
        for d in ("inv-a", "inv-b"):
            self.register(client, d)
        issued = []
        for i, d in enumerate(["inv-a", "inv-b", "inv-a", "inv-b", "inv-a"]):
            _, csr = self.pki.csr(f"inv{i}", f"/CN={d}")
            issued.append(self.sign(client, d, csr))
        serials = [c["serial"] for c in issued]

        # GetCertificate by serial and by fingerprint: the same certificate, with its chain.
        def same(got, c):
            self.assertEqual(got["serial"], c["serial"])
            self.assertEqual(got["sha256Fingerprint"], c["sha256Fingerprint"])
            self.assertEqual(got["certificatePem"], c["certificatePem"])
            self.assertEqual(got["chainPem"], c["chainPem"])
            self.assertEqual(got["commId"], c["commId"])

        for c in issued[:2]:
            same(self.ok(client.call("GetCertificate", {"serial": c["serial"]}, service=ISSUANCE),
                         "GetCertificate serial")["certificate"], c)
        upper = self.ok(client.call("GetCertificate", {"serial": serials[0].upper()}, service=ISSUANCE),
                        "GetCertificate upper-case serial")["certificate"]
        self.assertEqual(upper["serial"], serials[0])
        r = client.call("GetCertificate", {"serial": "7f" * 16 + "01"}, service=ISSUANCE)
        self.assertCode(r, "NOT_FOUND", "unknown serial")
        r = client.call("GetCertificate", {"serial": "not-hex"}, service=ISSUANCE)
        self.assertRefused(r, "INVALID_ARGUMENT", "serial", "malformed serial")
        with self.subTest("GetCertificate by sha256_fingerprint"):
            for c in issued[:2]:
                fp = c["sha256Fingerprint"]
                colons = ":".join(fp[i:i + 2] for i in range(0, 64, 2)).upper()  # as openssl prints it
                for form in (fp, colons):
                    same(self.ok(client.call("GetCertificate", {"sha256Fingerprint": form}, service=ISSUANCE),
                                 f"GetCertificate sha256Fingerprint {form}")["certificate"], c)
            r = client.call("GetCertificate", {"sha256Fingerprint": "ab" * 32}, service=ISSUANCE)
            self.assertCode(r, "NOT_FOUND", "unknown fingerprint")
            r = client.call("GetCertificate", {"sha256Fingerprint": "ab" * 20}, service=ISSUANCE)
            self.assertRefused(r, "INVALID_ARGUMENT", "sha256_fingerprint", "a fingerprint of 20 bytes")

        # ListCertificates: 5 certificates, pages of 2; comm-ID filter. Every certificate once;
        # the order, (create_time, serial) per the proto, is checked apart.
        got, pages = self.list_all(client, 2)
        self.assertEqual(pages, [2, 2, 1])
        self.assertEqual(sorted(got), sorted(serials))
        with self.subTest("ListCertificates is ordered by (create_time, serial) (proto)"):
            self.assertEqual(got, serials)
        got, pages = self.list_all(client, 1, commId="inv-b")
        self.assertEqual(pages, [1, 1])
        self.assertEqual(sorted(got), sorted([serials[1], serials[3]]))
        got, _ = self.list_all(client, 0, commId="inv-a", kind="CERTIFICATE_KIND_DEVICE")
        self.assertEqual(sorted(got), sorted([serials[0], serials[2], serials[4]]))
        got, _ = self.list_all(client, 10, commId="nobody")
        self.assertEqual(got, [])
        got, _ = self.list_all(client, 10, kind="CERTIFICATE_KIND_BROKER")
        self.assertEqual(got, [])
        self.assertCode(client.call("ListCertificates", {"pageSize": -1}, service=ISSUANCE),
                        "INVALID_ARGUMENT", "negative page size")

        # Renewal: a new certificate for the same comm-ID from a new CSR, linked to the old one.
        _, csr = self.pki.csr("renew", "/CN=inv-a")
        renewed = self.ok(client.call("RenewDeviceCertificate", {
            "commId": "inv-a", "previousSerial": serials[4], "csrPem": csr, "requestId": "renew-1"},
            service=ISSUANCE), "RenewDeviceCertificate")
        self.assertFalse(renewed["replayed"])
        new = renewed["certificate"]
        self.assertEqual(new["renewedFromSerial"], serials[4])
        self.assertEqual(new["commId"], "inv-a")
        self.assertNotIn(new["serial"], serials)
        self.assertVerifies(new["certificatePem"], new["chainPem"], purpose="sslclient")
        self.assertEqual(self.pki.field(new["certificatePem"], "-subject", "-nameopt", "RFC2253"),
                         "subject=CN=inv-a")
        self.assertEqual(db.query(f"SELECT encode(renewed_from, 'hex') FROM certificates "
                                  f"WHERE request_id = 'renew-1'"), serials[4])
        again = self.ok(client.call("RenewDeviceCertificate", {
            "commId": "inv-a", "previousSerial": serials[4], "csrPem": csr, "requestId": "renew-1"},
            service=ISSUANCE), "RenewDeviceCertificate retried")
        self.assertTrue(again["replayed"])
        self.assertEqual(again["certificate"]["serial"], new["serial"])
        got, _ = self.list_all(client, 100, commId="inv-a")
        self.assertEqual(sorted(got), sorted([serials[0], serials[2], serials[4], new["serial"]]))
        self.assertEqual(self.count(db), 6)

        # Renewal refusals, nothing written.
        _, csr_b = self.pki.csr("renew-b", "/CN=inv-b")
        r = client.call("RenewDeviceCertificate", {"commId": "inv-b", "previousSerial": "7f" * 16,
                                                   "csrPem": csr_b, "requestId": "renew-x1"}, service=ISSUANCE)
        self.assertRefused(r, "NOT_FOUND", "previous_serial", "unknown previous serial")
        r = client.call("RenewDeviceCertificate", {"commId": "inv-a", "previousSerial": serials[4],
                                                   "csrPem": csr_b, "requestId": "renew-x2"}, service=ISSUANCE)
        self.assertRefused(r, "INVALID_ARGUMENT", "csr_pem", "the CSR CN is inv-b, comm_id inv-a")
        self.assertEqual(self.count(db), 6)
        count = self.count(db)
        # The proto: "FAILED_PRECONDITION when the previous certificate ... belongs to another comm-ID".
        r = client.call("RenewDeviceCertificate", {"commId": "inv-b", "previousSerial": serials[0],
                                                   "csrPem": csr_b, "requestId": "renew-x3"}, service=ISSUANCE)
        with self.subTest("renewing another device's certificate: FAILED_PRECONDITION (proto)"):
            self.assertRefused(r, "FAILED_PRECONDITION", "previous_serial", "previous certificate of another device")
        self.assertEqual(self.count(db), count)

    def test_renew_without_previous_serial_takes_the_newest_active(self):
        # RenewDeviceCertificateRequest.previous_serial: "Empty means the certificate the caller
        # authenticated with (role device), or else the device's newest ACTIVE certificate."
        db, server, client = self.serve("renewnewest")
        self.register(client, "newest-1")
        certs = [self.sign(client, "newest-1", self.pki.csr(f"n{i}", "/CN=newest-1")[1]) for i in range(2)]
        _, csr = self.pki.csr("n-renew", "/CN=newest-1")
        r = client.call("RenewDeviceCertificate", {"commId": "newest-1", "csrPem": csr,
                                                   "requestId": "renew-newest"}, service=ISSUANCE)
        body = self.ok(r, "RenewDeviceCertificate without previous_serial")
        self.assertEqual(body["certificate"]["renewedFromSerial"], certs[1]["serial"])
        # A device with no certificate has nothing to renew.
        self.register(client, "newest-2")
        _, csr2 = self.pki.csr("n2", "/CN=newest-2")
        r = client.call("RenewDeviceCertificate", {"commId": "newest-2", "csrPem": csr2,
                                                   "requestId": "renew-none"}, service=ISSUANCE)
        self.assertIn(r.code, ("FAILED_PRECONDITION", "NOT_FOUND"), r)
        self.assertEqual(self.count(db), 3)

    def test_issuers_and_trust_bundles(self):
        db, server, client = self.serve("issuers")
        body = self.ok(client.call("ListIssuers", {}, service=CA), "ListIssuers")
        issuers = body["issuers"]
        with self.subTest("ListIssuers is ordered by issuer id (proto)"):
            self.assertEqual([i["issuerId"] for i in issuers], ["brokers-1", "devices-1", "operators-1", "root-1"])
        self.assertEqual(sorted(i["issuerId"] for i in issuers), ["brokers-1", "devices-1", "operators-1", "root-1"])
        self.assertEqual(body["nextPageToken"], "")
        by_id = {i["issuerId"]: i for i in issuers}
        purposes = {"root-1": "ISSUER_PURPOSE_ROOT", "devices-1": "ISSUER_PURPOSE_DEVICES",
                    "brokers-1": "ISSUER_PURPOSE_BROKERS", "operators-1": "ISSUER_PURPOSE_OPERATORS"}
        root_pem = by_id["root-1"]["certificatePem"]
        for issuer_id, i in by_id.items():
            with self.subTest(issuer_id):
                self.assertEqual(i["purpose"], purposes[issuer_id])
                self.assertEqual(i["status"], "ISSUER_STATUS_ACTIVE")
                self.assertEqual(i["keyStorage"], "KEY_STORAGE_SOFTWARE")
                self.assertEqual(i["kekId"], "e2e")
                self.assertEqual(i["keyAlgorithm"], "KEY_ALGORITHM_ECDSA_P256")
                self.assertEqual(i["csrPem"], "")
                self.assertEqual(i["parentIssuerId"], "" if issuer_id == "root-1" else "root-1")
                text = self.pki.text(i["certificatePem"])
                exts = x509_extensions(text)
                self.assertTrue(exts[BASIC_CONSTRAINTS][0])
                self.assertIn("CA:TRUE", exts[BASIC_CONSTRAINTS][1][0])
                self.assertEqual(exts[KEY_USAGE], (True, ["Certificate Sign, CRL Sign"]), text)
                self.assertEqual(self.pki.field(i["certificatePem"], "-fingerprint", "-sha256")
                                 .split("=", 1)[1].replace(":", "").lower(), i["sha256Fingerprint"])
                if issuer_id != "root-1":
                    self.assertVerifies(i["certificatePem"], root_pem, context=issuer_id)
        for issuer_id, i in by_id.items():
            with self.subTest(f"{issuer_id}: activate_time"):
                # proto: "activate_time is when the issuer became ACTIVE; unset if it never was".
                self.assertTrue(i.get("activateTime"), f"{issuer_id} is ACTIVE without an activateTime")
        with self.subTest("ListIssuers leaves chain_pem out (proto)"):
            self.assertEqual({k: i["chainPem"] for k, i in by_id.items()}, {k: "" for k in by_id})
        with self.subTest("ListIssuers pages (page_size 3)"):
            page1 = self.ok(client.call("ListIssuers", {"pageSize": 3}, service=CA), "ListIssuers page 1")
            self.assertEqual(len(page1["issuers"]), 3)
            self.assertTrue(page1["nextPageToken"])
            page2 = self.ok(client.call("ListIssuers", {"pageSize": 3, "pageToken": page1["nextPageToken"]},
                                        service=CA), "ListIssuers page 2")
            self.assertEqual(sorted(i["issuerId"] for i in page1["issuers"] + page2["issuers"]),
                             ["brokers-1", "devices-1", "operators-1", "root-1"])
            self.assertEqual(page2["nextPageToken"], "")
        only = self.ok(client.call("ListIssuers", {"purpose": "ISSUER_PURPOSE_DEVICES"}, service=CA), "filter")
        self.assertEqual([i["issuerId"] for i in only["issuers"]], ["devices-1"])
        with self.subTest("GetIssuer devices-1: chain_pem is the certificates above it (proto)"):
            got = self.issuer(client, "devices-1")
            self.assertEqual(normalize_pem(got["certificatePem"]), normalize_pem(
                by_id["devices-1"]["certificatePem"]))
            self.assertEqual([normalize_pem(b) for b in pem_blocks(got["chainPem"])], [normalize_pem(root_pem)])
        with self.subTest("GetIssuer root-1: chain_pem empty for a root (proto)"):
            self.assertEqual(self.issuer(client, "root-1")["chainPem"], "")
        self.assertCode(client.call("GetIssuer", {"issuerId": "devices-9"}, service=CA), "NOT_FOUND")

        pems = {k: normalize_pem(v["certificatePem"]) for k, v in by_id.items()}
        expected = {
            "TRUST_BUNDLE_SCOPE_ALL": {"root-1", "devices-1", "brokers-1", "operators-1"},
            "TRUST_BUNDLE_SCOPE_UNSPECIFIED": {"root-1", "devices-1", "brokers-1", "operators-1"},
            "TRUST_BUNDLE_SCOPE_CLIENT_AUTH": {"root-1", "devices-1", "operators-1"},
            "TRUST_BUNDLE_SCOPE_SERVER_AUTH": {"root-1", "brokers-1"},
        }
        for scope, ids in expected.items():
            with self.subTest(scope):
                b = self.trust_bundle(client, scope)
                blocks = [normalize_pem(p) for p in pem_blocks(b["bundlePem"])]
                self.assertEqual(set(b["issuerIds"]), ids)
                self.assertEqual(len(b["issuerIds"]), len(ids))
                self.assertEqual(blocks, [pems[i] for i in b["issuerIds"]], "bundle order = issuer_ids order")
                self.assertEqual(b["keystore"], "")
                self.assertEqual(b["bundleSha256"], hashlib.sha256(b["bundlePem"].encode()).hexdigest())
        for scope in expected:
            with self.subTest(f"{scope}: roots last (proto)"):
                # proto: "bundle_pem is the certificates, PEM, roots last".
                b = self.trust_bundle(client, scope)
                self.assertEqual(b["issuerIds"][-1], "root-1", "roots last")
        # The SERVER_AUTH bundle holds the brokers CA and not the devices CA.
        server_auth = self.trust_bundle(client, "TRUST_BUNDLE_SCOPE_SERVER_AUTH")["bundlePem"]
        self.assertIn(pems["brokers-1"].strip(), server_auth)
        self.assertNotIn(pems["devices-1"].strip(), server_auth)


if __name__ == "__main__":
    unittest.main()
