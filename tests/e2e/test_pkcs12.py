"""PKCS#12 key stores and truststores, end to end, read by tools no one here wrote: a device
key and CSR made with the openssl CLI, the certificate issued and exported by the fleetca
CLI (ExportPkcs12) and by buf curl, the files read by `openssl pkcs12` and by Java's keytool;
`fleetca ca bundle --format pkcs12 --pkcs12-encryption legacy` read by keytool; and the
refusals (exit codes and messages, no file written, the key never in the server's log).

Environment: the harness's (fleetca_e2e.py) and FLEETCA_CLI (test_cli.py); keytool
(openjdk-17-jre-headless, scripts/deps.sh).
"""

import base64
import os
import re
import shutil
import stat
import subprocess
import unittest

from test_cli import CliTestCase, openssl, read, write
from test_issuance import ISSUANCE, normalize_pem, pem_blocks

PASSWORD = "s3cret pass"


def key_body(pem):
    """The base64 lines of a PEM block: what must never appear in a log or a message."""
    return [l for l in pem.splitlines() if l and not l.startswith("-----")]


class Pkcs12TestCase(CliTestCase):

    def setUp(self):
        super().setUp()
        self.keytool = shutil.which("keytool")
        self.assertIsNotNone(self.keytool,
                             "keytool not found: install openjdk-17-jre-headless (scripts/deps.sh)")
        self.pki = os.path.join(self.tmpdir, "pki")
        os.makedirs(self.pki)
        self.password_file = write(os.path.join(self.pki, "pw"), PASSWORD + "\n", 0o600)

    def path(self, name):
        return os.path.join(self.pki, name)

    def device_cert(self, comm_id, env=None, register=True):
        """Registers comm_id (as admin), makes its key and CSR with openssl and has the CLI
        sign it (as `env`'s caller): (key path, Certificate as JSON, certificate path)."""
        if register:
            self.cli("device", "register", comm_id)
        key, csr, crt = self.path(comm_id + ".key"), self.path(comm_id + ".csr"), self.path(comm_id + ".crt")
        openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", key, "-out", csr, "-subj", f"/CN={comm_id}")
        os.chmod(key, 0o600)
        signed = self.json("cert", "sign", comm_id, "--csr", csr, "--out", crt, env=env)
        return key, signed["certificate"], crt

    def export(self, serial, key, out, *extra, env=None, expect=0):
        return self.cli("cert", "export-pkcs12", serial, "--key-file", key,
                        "--password-file", self.password_file, "--out", out, *extra,
                        env=env, expect=expect)

    def pkcs12_info(self, path):
        """`openssl pkcs12 -info -nodes`: (PEM blocks and bag attributes on stdout, the
        algorithm lines openssl prints on stderr)."""
        r = openssl("pkcs12", "-in", path, "-info", "-nodes", "-passin", f"file:{self.password_file}")
        return r.stdout, r.stderr

    def keytool_list(self, path, password=PASSWORD, check=True):
        r = self.run_keytool(["-list", "-v", "-storetype", "PKCS12", "-keystore", path,
                              "-storepass", password], check)
        return r.stdout

    def run_keytool(self, args, check=True):
        r = subprocess.run([self.keytool, *args], capture_output=True, text=True, timeout=120,
                           stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            self.fail(f"keytool {' '.join(args)}: exit {r.returncode}\n{r.stdout}\n{r.stderr}")
        return r

    def public_key(self, key_pem):
        """The public half of a PEM private key, as `openssl pkey -pubout` prints it."""
        src = write(self.path("pubout-src.pem"), key_pem, 0o600)
        return openssl("pkey", "-in", src, "-pubout").stdout

    def assertError(self, r, exit_code, code, contains=None):
        super().assertError(r, exit_code, code)
        if contains is not None:
            self.assertIn(contains, r.stderr)


class ExportPkcs12Test(Pkcs12TestCase):

    def test_device_key_store_read_by_openssl_and_keytool(self):
        self.serve()
        key, cert, crt = self.device_cert("SN-P12-1")
        chain = pem_blocks(cert["chainPem"])
        self.assertEqual(len(chain), 2, "the devices CA, then the root")
        serial = cert["serial"]

        # The default: AES-256 (PBES2), the chain up to the root, alias = the CN.
        out = self.path("sn1.p12")
        r = self.export(serial, key, out)
        self.assertEqual(r.stdout, "")
        self.assertIn(f"wrote {out}", r.stderr)
        self.assertEqual(stat.S_IMODE(os.stat(out).st_mode), 0o600)
        text, info = self.pkcs12_info(out)
        self.assertIn("PBES2, PBKDF2, AES-256-CBC", info)
        self.assertIn("MAC: sha256", info)
        # The key is the device's own.
        keys = re.findall(r"-----BEGIN PRIVATE KEY-----\n.*?-----END PRIVATE KEY-----\n", text, re.S)
        self.assertEqual(len(keys), 1, text)
        self.assertEqual(self.public_key(keys[0]), self.public_key(read(key)))
        # The certificates: the device's, then its chain.
        blocks = [normalize_pem(b) for b in pem_blocks(text)]
        self.assertEqual(blocks, [normalize_pem(cert["certificatePem"])] + [normalize_pem(c) for c in chain])
        self.assertIn("friendlyName: SN-P12-1", text)
        # keytool: one PrivateKeyEntry whose chain has the three certificates.
        listing = self.keytool_list(out)
        self.assertEqual(re.findall(r"^Alias name: (.*)$", listing, re.M), ["sn-p12-1"], listing)
        self.assertEqual(listing.count("Entry type: PrivateKeyEntry"), 1, listing)
        self.assertNotIn("trustedCertEntry", listing)
        self.assertIn("Certificate chain length: 3", listing)
        self.assertNotEqual(self.run_keytool(["-list", "-storetype", "PKCS12", "-keystore", out,
                                              "-storepass", "wrong"], check=False).returncode, 0)

        # Legacy (3DES, SHA-1 MAC), another alias, no chain; the brief's spellings of the flags.
        legacy = self.path("sn1-legacy.p12")
        self.cli("cert", "export-pkcs12", serial, "--private-key", key, "--password-file",
                 self.password_file, "--issuer-id", "devices-1", "--friendly-name", "pump-1",
                 "--exclude-chain", "--pkcs12-encryption", "legacy", "--out", legacy)
        text, info = self.pkcs12_info(legacy)
        self.assertIn("pbeWithSHA1And3-KeyTripleDES-CBC", info)
        self.assertIn("MAC: sha1", info)
        self.assertNotIn("AES-256", info)
        self.assertEqual([normalize_pem(b) for b in pem_blocks(text)], [normalize_pem(cert["certificatePem"])])
        listing = self.keytool_list(legacy)
        self.assertEqual(re.findall(r"^Alias name: (.*)$", listing, re.M), ["pump-1"], listing)
        self.assertEqual(listing.count("Entry type: PrivateKeyEntry"), 1, listing)
        self.assertIn("Certificate chain length: 1", listing)
        # "aes256" is taken too.
        self.export(serial, key, self.path("sn1-aes.p12"), "--pkcs12-encryption", "aes256")
        self.assertIn("AES-256-CBC", self.pkcs12_info(self.path("sn1-aes.p12"))[1])

        # The same through buf curl (the raw API, base64 in JSON).
        client = self.server.wait_ready()
        body = self.ok(client.call("ExportPkcs12", {
            "serial": serial, "privateKeyPem": read(key), "password": PASSWORD,
            "pkcs12Encryption": "PKCS12_ENCRYPTION_AES_256"}, service=ISSUANCE), "ExportPkcs12")
        raw = self.path("sn1-raw.p12")
        with open(raw, "wb") as f:
            f.write(base64.b64decode(body["pkcs12"]))
        self.assertIn("Certificate chain length: 3", self.keytool_list(raw))

        # The key went nowhere: not in the server's log.
        log_text = self.server.log_text()
        for line in key_body(read(key)):
            self.assertNotIn(line, log_text)

    def test_ca_bundle_pkcs12_legacy_read_by_keytool(self):
        self.serve()
        for encryption, algorithm in (("legacy", "pbeWithSHA1And3-KeyTripleDES-CBC"),
                                      ("aes-256", "AES-256-CBC")):
            with self.subTest(encryption):
                out = self.path(f"trust-{encryption}.p12")
                body = self.json("ca", "bundle", "--format", "pkcs12", "--pkcs12-encryption",
                                 encryption, "--password-file", self.password_file, "--out", out)
                ids = body["issuerIds"]
                self.assertIn("root-1", ids)
                _, info = self.pkcs12_info(out)
                self.assertIn(algorithm, info)
                listing = self.keytool_list(out)
                self.assertEqual(sorted(re.findall(r"^Alias name: (.*)$", listing, re.M)),
                                 sorted(i.lower() for i in ids), listing)
                self.assertEqual(listing.count("Entry type: trustedCertEntry"), len(ids), listing)
                self.assertNotIn("PrivateKeyEntry", listing)
        # Usage errors before any call.
        r = self.cli("ca", "bundle", "--format", "pkcs12", "--pkcs12-encryption", "rc2",
                     "--password-file", self.password_file, "--out", self.path("x.p12"), expect=2)
        self.assertIn("--pkcs12-encryption", r.stderr)
        self.assertIn("aes-256|legacy", r.stderr)
        r = self.cli("ca", "bundle", "--pkcs12-encryption", "legacy", expect=2)
        self.assertIn("--format pkcs12", r.stderr)
        self.assertFalse(os.path.exists(self.path("x.p12")))


class ExportPkcs12RefusalsTest(Pkcs12TestCase):

    def test_refusals_name_the_problem_and_write_nothing(self):
        self.serve()
        key, cert, crt = self.device_cert("SN-R-1")
        serial = cert["serial"]
        out = self.path("refused.p12")

        # NOT_FOUND (3): an unknown serial, or the serial of another issuer than the one named.
        self.assertError(self.export("0123456789abcdef0123456789abcdef", key, out, expect=None),
                         3, "NOT_FOUND", "0123456789abcdef")
        self.assertError(self.export(serial, key, out, "--issuer-id", "brokers-1", expect=None),
                         3, "NOT_FOUND", "brokers-1")

        # INVALID_ARGUMENT (2): another key, a password that is empty or too long, a bad serial.
        other_key, _, _ = self.device_cert("SN-R-2")
        r = self.export(serial, other_key, out, expect=None)
        self.assertError(r, 2, "INVALID_ARGUMENT", "private_key_pem")
        self.assertIn("does not match", r.stderr)
        for line in key_body(read(other_key)):
            self.assertNotIn(line, r.stderr)
        garbage = write(self.path("garbage.key"), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", 0o600)
        self.assertError(self.export(serial, garbage, out, expect=None), 2, "INVALID_ARGUMENT",
                         "private_key_pem")
        empty_pw = write(self.path("empty-pw"), "\n", 0o600)
        self.assertError(self.cli("cert", "export-pkcs12", serial, "--key-file", key,
                                  "--password-file", empty_pw, "--out", out, expect=None),
                         2, "INVALID_ARGUMENT", "password")
        long_pw = write(self.path("long-pw"), "x" * 129, 0o600)
        self.assertError(self.cli("cert", "export-pkcs12", serial, "--key-file", key,
                                  "--password-file", long_pw, "--out", out, expect=None),
                         2, "INVALID_ARGUMENT", "password: at most 128 bytes")
        self.assertError(self.export("zz-not-hex", key, out, expect=None), 2, "INVALID_ARGUMENT",
                         "serial")
        # Usage (2, before any call): no --out, no password, a bad --pkcs12-encryption.
        r = self.cli("cert", "export-pkcs12", serial, "--key-file", key, "--password-file",
                     self.password_file, expect=2)
        self.assertIn("--out", r.stderr)
        r = self.cli("cert", "export-pkcs12", serial, "--key-file", key, "--out", out, expect=2)
        self.assertIn("password", r.stderr)
        r = self.export(serial, key, out, "--pkcs12-encryption", "des", expect=2)
        self.assertIn("aes-256|legacy", r.stderr)

        # FAILED_PRECONDITION (4): revoked, on hold.
        self.cli("cert", "revoke", serial, "--reason", "key-compromise")
        self.assertError(self.export(serial, key, out, expect=None), 4, "FAILED_PRECONDITION",
                         "revoked")
        held_key, held, _ = self.device_cert("SN-R-3")
        self.cli("cert", "hold", held["serial"])
        self.assertError(self.export(held["serial"], held_key, out, expect=None), 4,
                         "FAILED_PRECONDITION", "on hold")
        self.cli("cert", "release", held["serial"])
        self.export(held["serial"], held_key, self.path("released.p12"))

        # PERMISSION_DENIED (5): a provisioner exports only what it requested.
        station = self.path("station-7.pem")
        self.cli("identity", "issue", "station-7", "--role", "provisioner", "--out", station)
        as_station = self.env(FLEETCA_CREDENTIAL=station)
        self.assertError(self.export(held["serial"], held_key, out, env=as_station, expect=None),
                         5, "PERMISSION_DENIED", "role provisioner (station-7)")
        own_key, own, _ = self.device_cert("SN-R-4", env=as_station)
        self.assertEqual(own["requestedBy"], "station-7")
        self.export(own["serial"], own_key, self.path("own.p12"), env=as_station)
        self.assertIn("Certificate chain length: 3", self.keytool_list(self.path("own.p12")))

        # A device (its certificate as the client certificate) exports its own certificate,
        # not another device's.
        device_cert = write(self.path("SN-R-4.fullchain.pem"), own["certificatePem"] + own["chainPem"])
        as_device = self.env(credential=False, FLEETCA_ADDRESS=self.address,
                             FLEETCA_CACERT=self.cacert, FLEETCA_CERT=device_cert,
                             FLEETCA_KEY=own_key)
        self.export(own["serial"], own_key, self.path("device-own.p12"), env=as_device)
        self.assertError(self.export(held["serial"], held_key, out, env=as_device, expect=None),
                         5, "PERMISSION_DENIED", "role device (SN-R-4)")

        self.assertFalse(os.path.exists(out), "a refused export wrote a file")
        log_text = self.server.log_text()
        for k in (key, other_key, held_key, own_key):
            for line in key_body(read(k)):
                self.assertNotIn(line, log_text)


if __name__ == "__main__":
    unittest.main()
