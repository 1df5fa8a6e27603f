"""The CA hierarchy: every CA key algorithm, the offline root (a CSR signed by an openssl-CLI
root and imported back), and key protection (keys stored only wrapped under the KEK, the
server refusing to start without the right KEK)."""

import base64
import os
import re
import shutil
import unittest

from fleetca_e2e import SERVER, pg_bindir
from fleetca_e2e import test_kek as harness_kek
from test_issuance import CA, IssuanceTestCase, normalize_pem, pem_blocks, read, run, write

ALL_IDS = ["brokers-1", "devices-1", "operators-1", "root-1"]


class CaAlgorithmsTest(IssuanceTestCase):

    # (root, intermediates, the signature algorithm openssl shows on a device certificate)
    CASES = [
        ("KEY_ALGORITHM_ECDSA_P384", "KEY_ALGORITHM_ECDSA_P384", "ecdsa-with-SHA384"),
        ("KEY_ALGORITHM_RSA_2048", "KEY_ALGORITHM_RSA_2048", "sha256WithRSAEncryption"),
        ("KEY_ALGORITHM_ED25519", "KEY_ALGORITHM_ED25519", "ED25519"),
        ("KEY_ALGORITHM_RSA_3072", "KEY_ALGORITHM_ECDSA_P256", "ecdsa-with-SHA256"),
        ("KEY_ALGORITHM_RSA_4096", "KEY_ALGORITHM_RSA_4096", "sha256WithRSAEncryption"),
    ]

    def test_every_ca_algorithm_makes_a_chain_openssl_verifies(self):
        for root_alg, inter_alg, sig_alg in self.CASES:
            with self.subTest(f"root {root_alg}, intermediates {inter_alg}"):
                label = (root_alg + inter_alg).replace("KEY_ALGORITHM_", "").replace("_", "").lower()
                db, server, client = self.serve("alg" + label, init_request={
                    "rootKeyAlgorithm": root_alg, "intermediateKeyAlgorithm": inter_alg})
                issuers = {i["issuerId"]: i for i in self.ok(client.call("ListIssuers", {}, service=CA))["issuers"]}
                self.assertEqual(sorted(issuers), ALL_IDS)
                for issuer_id, i in issuers.items():
                    self.assertEqual(i["keyAlgorithm"], root_alg if issuer_id == "root-1" else inter_alg, issuer_id)
                root = issuers["root-1"]["certificatePem"]
                for issuer_id in ("devices-1", "brokers-1", "operators-1"):
                    self.assertVerifies(issuers[issuer_id]["certificatePem"], root, context=issuer_id)
                self.register(client, "dev-1")
                _, csr = self.pki.csr(label, "/CN=dev-1")
                cert = self.sign(client, "dev-1", csr)
                chain = pem_blocks(cert["chainPem"])
                self.assertEqual(len(chain), 2)
                self.assertVerifies(cert["certificatePem"], chain[1], untrusted_pem=chain[0],
                                    purpose="sslclient", context=f"{root_alg}/{inter_alg}")
                self.assertVerifies(cert["certificatePem"], cert["chainPem"], context="-CAfile chainPem")
                text = self.pki.text(cert["certificatePem"])
                self.assertIn(f"Signature Algorithm: {sig_alg}", text)
                # The issued certificate's key is the device's, whatever the CA's algorithm.
                self.assertIn("Public Key Algorithm: id-ecPublicKey", text)
                self.assertEqual(self.count(db), 1)
                server.kill()

    def test_init_command_with_an_algorithm(self):
        db = self.new_database("initcmd")
        init = self.start_server(db.url, command="init", name="init",
                                 args=["--ca_key_algorithm=ed25519", "--ca_name=Acme"])
        self.assertEqual(init.wait_exit(), 0, init.describe())
        again = self.start_server(db.url, command="init", name="init-again")
        self.assertEqual(again.wait_exit(), 0, again.describe())
        self.assertEqual(db.query("SELECT string_agg(id || ':' || algorithm, ',' ORDER BY id) FROM issuers"),
                         "brokers-1:ed25519,devices-1:ed25519,operators-1:ed25519,root-1:ed25519")
        client = self.start_server(db.url).wait_ready()
        issuer = self.issuer(client, "devices-1")
        self.assertEqual(issuer["subject"], "CN=Acme Devices CA")
        self.register(client, "dev-1")
        cert = self.sign(client, "dev-1", self.pki.csr("d", "/CN=dev-1")[1])
        self.assertVerifies(cert["certificatePem"], cert["chainPem"], purpose="sslclient")


class TrustStoreTest(IssuanceTestCase):
    """GetTrustBundle as a PKCS#12 truststore, read by Java's keytool and openssl."""

    def test_pkcs12_truststore_for_java_and_openssl(self):
        keytool = shutil.which("keytool")
        self.assertIsNotNone(keytool, "keytool not found: install openjdk-17-jre-headless (scripts/deps.sh)")
        _, _, client = self.serve("truststore")
        for scope, encryption in (("TRUST_BUNDLE_SCOPE_CLIENT_AUTH", "PKCS12_ENCRYPTION_AES_256"),
                                  ("TRUST_BUNDLE_SCOPE_ALL", "PKCS12_ENCRYPTION_LEGACY")):
            with self.subTest(f"{scope} {encryption}"):
                body = self.ok(client.call("GetTrustBundle", {
                    "scope": scope, "format": "TRUST_BUNDLE_FORMAT_PKCS12",
                    "keystorePassword": "s3cret pass", "pkcs12Encryption": encryption}, service=CA))
                path = write(os.path.join(self.tmpdir, f"{scope}.p12"), base64.b64decode(body["keystore"]))
                listing = run([keytool, "-list", "-v", "-storetype", "PKCS12", "-keystore", path,
                               "-storepass", "s3cret pass"]).stdout
                aliases = re.findall(r"^Alias name: (.*)$", listing, re.M)
                self.assertEqual(sorted(aliases), sorted(i.lower() for i in body["issuerIds"]), listing)
                self.assertEqual(listing.count("Entry type: trustedCertEntry"), len(aliases), listing)
                # openssl reads the same certificates as the PEM bundle, in the same order.
                out = run(["openssl", "pkcs12", "-in", path, "-nokeys", "-passin", "pass:s3cret pass"]).stdout
                self.assertEqual([normalize_pem(b) for b in pem_blocks(out)],
                                 [normalize_pem(b) for b in pem_blocks(body["bundlePem"])])
                wrong = run([keytool, "-list", "-storetype", "PKCS12", "-keystore", path,
                             "-storepass", "wrong"], check=False)
                self.assertNotEqual(wrong.returncode, 0)
        r = client.call("GetTrustBundle", {"format": "TRUST_BUNDLE_FORMAT_PKCS12"}, service=CA)
        self.assertCode(r, "INVALID_ARGUMENT", "PKCS12 without a password")
        self.assertIn("keystore_password", r.message)
        r = client.call("GetTrustBundle", {"keystorePassword": "x"}, service=CA)
        self.assertCode(r, "INVALID_ARGUMENT", "a password for PEM")
        self.assertIn("keystore_password", r.message)
        r = client.call("GetTrustBundle", {"format": "TRUST_BUNDLE_FORMAT_PKCS12",
                                           "keystorePassword": "x" * 129}, service=CA)
        self.assertCode(r, "INVALID_ARGUMENT", "a 129-byte password")
        self.assertIn("keystore_password", r.message)
        r = client.call("GetTrustBundle", {"format": "TRUST_BUNDLE_FORMAT_JKS",
                                           "keystorePassword": "x"}, service=CA)
        self.assertCode(r, "UNIMPLEMENTED", "JKS")
        self.assertIn("TRUST_BUNDLE_FORMAT_PKCS12", r.message)


class OfflineRootTest(IssuanceTestCase):

    CA_EXTENSIONS = ["basicConstraints=critical,CA:TRUE,pathlen:0", "keyUsage=critical,keyCertSign,cRLSign",
                     "subjectKeyIdentifier=hash", "authorityKeyIdentifier=keyid:always"]

    def test_offline_root_csr_signed_by_openssl_and_imported(self):
        db, server, client = self.serve("offline", init=False)
        body = self.ok(client.call("InitializeHierarchy", {"offlineRoot": True}, service=CA),
                       "InitializeHierarchy offlineRoot")
        pending = {i["issuerId"]: i for i in body["issuers"]}
        self.assertEqual(sorted(pending), ["brokers-1", "devices-1", "operators-1"])
        self.assertEqual(sorted(body["createdIssuerIds"]), ["brokers-1", "devices-1", "operators-1"])
        for issuer_id, i in pending.items():
            self.assertEqual(i["status"], "ISSUER_STATUS_PENDING", issuer_id)
            self.assertEqual(i["certificatePem"], "")
            self.assertTrue(i["csrPem"].startswith("-----BEGIN CERTIFICATE REQUEST-----"), i)
            run(["openssl", "req", "-noout", "-verify"], input=i["csrPem"])
        self.assertEqual(self.count(db, "issuers", "key_ciphertext IS NOT NULL AND purpose = 'root'"), 0)
        again = self.ok(client.call("InitializeHierarchy", {"offlineRoot": True}, service=CA), "again")
        self.assertEqual(again["createdIssuerIds"], [])
        self.assertEqual({i["issuerId"]: i["csrPem"] for i in again["issuers"]},
                         {k: v["csrPem"] for k, v in pending.items()})

        # Not usable yet.
        self.register(client, "dev-1")
        _, csr = self.pki.csr("dev", "/CN=dev-1")
        self.assertCode(self.sign_call(client, "dev-1", csr), "FAILED_PRECONDITION", "sign while pending")
        self.assertEqual(self.count(db), 0)

        # The offline root, made and used with the openssl CLI.
        root_key, root_crt = self.pki.self_signed_ca("offline-root", "/O=Acme/CN=Acme Offline Root")
        root_pem = read(root_crt)
        devices_pem = self.pki.sign("devices-1", pending["devices-1"]["csrPem"], root_crt, root_key,
                                    self.CA_EXTENSIONS, days=1825)

        # Refusals first: a certificate for another key, a non-CA certificate, a broken chain.
        _, stranger_csr = self.pki.csr("stranger", "/CN=Stranger CA")
        stranger_pem = self.pki.sign("stranger", stranger_csr, root_crt, root_key, self.CA_EXTENSIONS)
        not_ca_pem = self.pki.sign("brokers-not-ca", pending["brokers-1"]["csrPem"], root_crt, root_key,
                                   ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature"])
        other_key, other_root = self.pki.self_signed_ca("other-root", "/CN=Other Root")
        imp = lambda issuer_id, cert, chain: client.call("ImportIntermediateCertificate", {
            "issuerId": issuer_id, "certificatePem": cert, "chainPem": chain}, service=CA)
        for what, call, code in [
            ("a certificate for another key", imp("brokers-1", stranger_pem, root_pem), "INVALID_ARGUMENT"),
            ("the devices certificate for the brokers key", imp("brokers-1", devices_pem, root_pem), "INVALID_ARGUMENT"),
            ("a certificate with CA:FALSE", imp("brokers-1", not_ca_pem, root_pem), "INVALID_ARGUMENT"),
            ("a chain to another root", imp("devices-1", devices_pem, read(other_root)), "INVALID_ARGUMENT"),
            ("no chain", imp("devices-1", devices_pem, ""), "INVALID_ARGUMENT"),
            ("garbage certificate", imp("devices-1", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                                        root_pem), "INVALID_ARGUMENT"),
            ("an unknown issuer", imp("devices-7", devices_pem, root_pem), "NOT_FOUND"),
        ]:
            with self.subTest(what):
                self.assertCode(call, code, what)
                self.assertIn("ISSUER_STATUS_PENDING", self.issuer(client, "brokers-1")["status"])
        self.assertEqual(self.issuer(client, "devices-1")["status"], "ISSUER_STATUS_PENDING")

        # The real import.
        imported = self.ok(imp("devices-1", devices_pem, root_pem), "ImportIntermediateCertificate")
        self.assertEqual(imported["issuer"]["status"], "ISSUER_STATUS_ACTIVE")
        with self.subTest("csr_pem is set only while PENDING (proto)"):
            self.assertEqual(imported["issuer"]["csrPem"], "")
            self.assertEqual(self.issuer(client, "devices-1")["csrPem"], "")
        self.assertEqual(normalize_pem(imported["issuer"]["certificatePem"]), normalize_pem(devices_pem))
        with self.subTest("the root is added as a trusted issuer without a key (proto)"):
            root_id = imported["rootIssuerId"]
            self.assertTrue(root_id, "root_issuer_id is empty")
            self.assertEqual(imported["issuer"]["parentIssuerId"], root_id)
            root_issuer = self.issuer(client, root_id)
            self.assertEqual(root_issuer["keyStorage"], "KEY_STORAGE_NONE")
            self.assertEqual(normalize_pem(root_issuer["certificatePem"]), normalize_pem(root_pem))
        self.assertEqual([normalize_pem(c) for c in pem_blocks(self.issuer(client, "devices-1")["chainPem"])][-1],
                         normalize_pem(root_pem))
        self.assertCode(imp("devices-1", devices_pem, root_pem), "FAILED_PRECONDITION", "import twice")

        # Devices get certificates that verify against the external root.
        cert = self.sign(client, "dev-1", csr)
        self.assertEqual(cert["issuerId"], "devices-1")
        chain = pem_blocks(cert["chainPem"])
        self.assertEqual([normalize_pem(c) for c in chain], [normalize_pem(devices_pem), normalize_pem(root_pem)])
        self.assertVerifies(cert["certificatePem"], root_pem, untrusted_pem=devices_pem, purpose="sslclient",
                            context="against the openssl root")
        bundle = self.trust_bundle(client, "TRUST_BUNDLE_SCOPE_CLIENT_AUTH")
        self.assertIn("devices-1", bundle["issuerIds"])
        self.assertNotIn("brokers-1", bundle["issuerIds"], "a PENDING issuer is in a trust bundle")
        with self.subTest("the CLIENT_AUTH bundle holds the offline root (a broker's cafile)"):
            self.assertIn(normalize_pem(root_pem), [normalize_pem(b) for b in pem_blocks(bundle["bundlePem"])])
            self.assertVerifies(cert["certificatePem"], bundle["bundlePem"], purpose="sslclient",
                                context="CLIENT_AUTH bundle alone")
        # The brokers CA is still pending: no broker certificates yet.
        self.register_broker(client, "mqtt-1", dns=["localhost"])
        self.assertCode(self.sign_broker(client, "mqtt-1", self.pki.csr("b", "/CN=localhost")[1]),
                        "FAILED_PRECONDITION", "broker certificate while the brokers CA is pending")

        # A restarted server loads the imported hierarchy (no root key) and signs again.
        self.assertEqual(server.stop(), 0, server.describe())
        client = self.start_server(db.url, name="restarted").wait_ready()
        cert2 = self.sign(client, "dev-1", self.pki.csr("dev2", "/CN=dev-1")[1])
        self.assertVerifies(cert2["certificatePem"], root_pem, untrusted_pem=devices_pem, purpose="sslclient")
        # InitializeHierarchy without offline_root now: proto: "FAILED_PRECONDITION when
        # offline_root is false but the existing root's key is not held". Above all, no second
        # (online) root may appear beside the offline one.
        issuers_before = db.query("SELECT string_agg(id, ',' ORDER BY id) FROM issuers")
        r = client.call("InitializeHierarchy", {}, service=CA)
        with self.subTest("InitializeHierarchy (online) over an offline root"):
            self.assertCode(r, "FAILED_PRECONDITION", "InitializeHierarchy without offline_root")
            self.assertEqual(db.query("SELECT string_agg(id, ',' ORDER BY id) FROM issuers"), issuers_before)
        self.assertEqual(self.count(db), 2)


class KeyProtectionTest(IssuanceTestCase):

    def new_kek(self, kek_id, name):
        kek = run([SERVER, "gen-kek", f"--kek_id={kek_id}"]).stdout.strip()
        self.assertNotIn("\n", kek)
        return kek, write(os.path.join(self.tmpdir, name), kek + "\n", mode=0o600)

    def run_to_exit(self, db, **kwargs):
        server = self.start_server(db.url, **kwargs)
        return server, server.wait_exit(60)

    def test_keys_wrapped_and_kek_required(self):
        db, server, client = self.serve("keys")
        rows = db.query("SELECT id, coalesce(kek_id, ''), encode(key_ciphertext, 'hex') FROM issuers ORDER BY id")
        rows = [r.split("|") for r in rows.splitlines()]
        self.assertEqual([r[0] for r in rows], ALL_IDS)
        for issuer_id, kek_id, hex_ct in rows:
            with self.subTest(issuer_id):
                self.assertEqual(kek_id, "e2e")
                blob = bytes.fromhex(hex_ct)
                self.assertGreater(len(blob), 32)
                path = write(os.path.join(self.tmpdir, issuer_id + ".blob"), blob)
                for form in (["pkey", "-inform", "DER"], ["ec", "-inform", "DER"], ["pkey", "-inform", "PEM"]):
                    r = run(["openssl", *form, "-in", path, "-noout"], check=False)
                    self.assertNotEqual(r.returncode, 0, f"{issuer_id}: key_ciphertext parses as a key ({form})")
        self.assertEqual(len({r[2] for r in rows}), 4)

        # Nothing in a dump of the database looks like a private key: no PEM, no DER PKCS#8
        # or SEC1 EC key (bytea is dumped in hex).
        dump = run([os.path.join(pg_bindir(), "pg_dump"), "--no-owner", "-d", db.url]).stdout
        self.assertIn("COPY public.issuers", dump)
        self.assertNotIn("PRIVATE KEY", dump)
        self.assertEqual(dump.count("-----BEGIN"), 0)
        self.assertNotIn("020100301306072a8648ce3d0201", dump, "a DER PKCS#8 EC key")
        self.assertNotIn("30770201010420", dump, "a DER SEC1 P-256 key")
        self.assertNotIn("PRIVATE KEY", server.log_text())

        # The same KEK: signs again after a restart.
        self.register(client, "dev-1")
        self.sign(client, "dev-1", self.pki.csr("a", "/CN=dev-1")[1])
        self.assertEqual(server.stop(), 0, server.describe())
        client = self.start_server(db.url, name="same-kek").wait_ready()
        cert = self.sign(client, "dev-1", self.pki.csr("b", "/CN=dev-1")[1])
        self.assertVerifies(cert["certificatePem"], cert["chainPem"], purpose="sslclient")
        self.servers[-1].kill()

        # Another KEK: exit 1, naming the KEK id the keys need.
        other, _ = self.new_kek("other-kek", "other.kek")
        s, code = self.run_to_exit(db, name="other-kek", env={"FLEETCA_KEK": other})
        self.assertEqual(code, 1, s.describe())
        self.assertIn("e2e", s.log_text(), "the message does not name the KEK id the keys are wrapped under")
        self.assertNotIn("serving", s.messages())
        # The same id with other key material: exit 1 as well.
        impostor, _ = self.new_kek("e2e", "impostor.kek")
        s, code = self.run_to_exit(db, name="impostor-kek", env={"FLEETCA_KEK": impostor})
        self.assertEqual(code, 1, s.describe())
        self.assertIn("e2e", s.log_text())
        # No KEK: exit 2, saying how to give one.
        s, code = self.run_to_exit(db, name="no-kek", env={"FLEETCA_KEK": ""})
        self.assertEqual(code, 2, s.describe())
        self.assertIn("FLEETCA_KEK", s.log_text())
        # A malformed KEK: exit 2.
        s, code = self.run_to_exit(db, name="bad-kek", env={"FLEETCA_KEK": "not a kek"})
        self.assertEqual(code, 2, s.describe())

        # KEK files: mode 0600 required; the right file serves.
        good_file = write(os.path.join(self.tmpdir, "e2e.kek"), harness_kek() + "\n", mode=0o644)
        s, code = self.run_to_exit(db, name="kek-file-0644", args=[f"--kek_file={good_file}"],
                                   env={"FLEETCA_KEK": ""})
        self.assertEqual(code, 2, s.describe())
        self.assertIn("kek_file", s.log_text())
        os.chmod(good_file, 0o600)
        s = self.start_server(db.url, name="kek-file", args=[f"--kek_file={good_file}"], env={"FLEETCA_KEK": ""})
        client = s.wait_ready()
        self.sign(client, "dev-1", self.pki.csr("c", "/CN=dev-1")[1])
        s.kill()

        # Rotation: a new primary KEK with the old one as a previous KEK still starts and signs.
        new, _ = self.new_kek("kek-2", "kek-2.kek")
        s = self.start_server(db.url, name="rotated", args=[f"--previous_kek_files={good_file}"],
                              env={"FLEETCA_KEK": new})
        client = s.wait_ready()
        self.sign(client, "dev-1", self.pki.csr("d", "/CN=dev-1")[1])
        self.assertEqual(self.count(db), 4)


if __name__ == "__main__":
    unittest.main()
