"""What SignDeviceCsr and SignBrokerCsr accept and refuse: every allowed subject key
algorithm, and the bad-input catalogue, each case with its exact gRPC code, a message naming
the field, and no row written."""

import base64
import os
import textwrap
import unittest

from test_issuance import KEY_ALGORITHM_ENUM, MAX_CSR_BYTES, IssuanceTestCase, run


def der_to_pem(der):
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{body}\n-----END CERTIFICATE REQUEST-----\n"


def pem_to_der(pem):
    return run(["openssl", "req", "-outform", "DER"], input=pem.encode()).stdout


class DeviceKeyAlgorithmsTest(IssuanceTestCase):

    def test_every_allowed_device_key_algorithm(self):
        db, server, client = self.serve("devalgs")
        for i, key in enumerate(["p256", "p384", "rsa2048", "rsa3072", "rsa4096", "ed25519"]):
            with self.subTest(key):
                comm_id = f"alg-{key}"
                self.register(client, comm_id)
                _, csr = self.pki.csr(comm_id, f"/CN={comm_id}", key=key)
                # Every other one in DER, to cover both encodings for several key types.
                cert = self.sign(client, comm_id, pem_to_der(csr) if i % 2 else csr)
                self.assertEqual(cert["keyAlgorithm"], KEY_ALGORITHM_ENUM[key])
                self.assertVerifies(cert["certificatePem"], cert["chainPem"], purpose="sslclient", context=key)
                # The certificate carries the CSR's key, and only the CA decided the rest.
                cert_key = run(["openssl", "x509", "-noout", "-pubkey"], input=cert["certificatePem"]).stdout
                csr_key = run(["openssl", "req", "-noout", "-pubkey"], input=csr).stdout
                self.assertEqual(cert_key, csr_key)
                self.assertEqual(self.pki.field(cert["certificatePem"], "-subject", "-nameopt", "RFC2253"),
                                 f"subject=CN={comm_id}")
        self.assertEqual(self.count(db), 6)


class BadInputTest(IssuanceTestCase):
    """The catalogue. Each case: (what, call, code, text the message must contain)."""

    def rows(self, db):
        return (self.count(db), self.count(db, "change_log", "entity_type = 'certificate'"))

    def check_cases(self, db, cases):
        for what, call, code, needles in cases:
            with self.subTest(what):
                before = self.rows(db)
                r = call()
                self.assertCode(r, code, what)
                for needle in needles:
                    self.assertIn(needle, r.message, f"{what}: the message does not say {needle!r}")
                self.assertEqual(self.rows(db), before, f"{what}: a row was written")

    def test_device_csr_catalogue(self):
        db, server, client = self.serve("badinput")
        comm_id = "abc-1"
        for d in (comm_id, "ABC-1"):
            self.register(client, d)
        self.register(client, "susp-1", status="DEVICE_STATUS_SUSPENDED")
        self.register(client, "decom-1", status="DEVICE_STATUS_DECOMMISSIONED")
        pki = self.pki

        _, good = pki.csr("good", f"/CN={comm_id}")
        _, good2 = pki.csr("good2", f"/CN={comm_id}")
        good_der = pem_to_der(good)
        # A bad signature: the last byte of the DER is the last byte of the signature value.
        bad_sig = bytearray(good_der)
        bad_sig[-1] ^= 0x01
        bad_sig = bytes(bad_sig)
        # A flipped byte inside the signed part (the subject's CN "abc-1" becomes "abd-1").
        at = good_der.index(b"abc-1")
        bad_tbs = good_der[:at] + b"abd-1" + good_der[at + 5:]
        _, upper = pki.csr("upper", "/CN=ABC-1")   # registered too, but not comm_id
        _, lower_for_upper = pki.csr("lower", "/CN=abc-1")
        _, trailing = pki.csr("trailing", f"/CN={comm_id} ")
        self.assertEqual(pki.csr_subject(trailing), f"subject=CN={comm_id}\\ ",
                         "openssl kept the trailing space (else this case tests nothing)")
        _, leading = pki.csr("leading", f"/CN= {comm_id}")
        _, two_cns = pki.csr("twocn", f"/CN={comm_id}/CN={comm_id}")
        _, two_cns_differ = pki.csr("twocn2", f"/CN={comm_id}/CN=other")
        _, no_cn = pki.csr("nocn", f"/O=Acme/serialNumber={comm_id}")
        _, ghost = pki.csr("ghost", "/CN=ghost-1")
        _, susp = pki.csr("susp", "/CN=susp-1")
        _, decom = pki.csr("decom", "/CN=decom-1")
        _, rsa1024 = pki.csr("rsa1024", f"/CN={comm_id}", key="rsa1024")
        _, k256 = pki.csr("k256", f"/CN={comm_id}", key="secp256k1")
        _, p521 = pki.csr("p521", f"/CN={comm_id}", key="p521")
        _, ed448 = pki.csr("ed448", f"/CN={comm_id}", key="ed448")
        _, san_dns = pki.csr("sandns", f"/CN={comm_id}", addext=["subjectAltName=DNS:x"])
        _, san_ip = pki.csr("sanip", f"/CN={comm_id}", addext=["subjectAltName=IP:10.0.0.1"])
        _, other_ext = pki.csr("nscomment", f"/CN={comm_id}", addext=["nsComment=hello"])
        _, big = pki.csr("big", f"/CN={comm_id}", addext=["nsComment=" + "x" * (MAX_CSR_BYTES + 100)])
        big_der = pem_to_der(big)
        self.assertGreater(len(big_der), MAX_CSR_BYTES)
        a_certificate = self.issuer(client, "devices-1")["certificatePem"]

        sign = lambda cid, csr, **kw: (lambda: self.sign_call(client, cid, csr, **kw))
        cases = [
            # Syntax.
            ("malformed PEM (not base64)", sign(comm_id, "-----BEGIN CERTIFICATE REQUEST-----\n!!not base64!!\n"
                                                         "-----END CERTIFICATE REQUEST-----\n"),
             "INVALID_ARGUMENT", ["csr_pem"]),
            ("truncated PEM (no END line)", sign(comm_id, good[:len(good) // 2]), "INVALID_ARGUMENT", ["csr_pem"]),
            ("not PEM at all", sign(comm_id, "hello, I am a CSR"), "INVALID_ARGUMENT", ["csr_pem"]),
            ("a CERTIFICATE block instead of a CSR", sign(comm_id, a_certificate), "INVALID_ARGUMENT", ["csr_pem"]),
            ("PEM whose content is not a CSR", sign(comm_id, der_to_pem(os.urandom(200))),
             "INVALID_ARGUMENT", ["csr_pem"]),
            ("garbage DER", sign(comm_id, os.urandom(300)), "INVALID_ARGUMENT", ["csr_der"]),
            ("truncated DER", sign(comm_id, good_der[:-10]), "INVALID_ARGUMENT", ["csr_der"]),
            ("DER with trailing bytes", sign(comm_id, good_der + b"\x00\x00"), "INVALID_ARGUMENT", ["csr_der"]),
            ("PEM with trailing junk", sign(comm_id, good + "junk\n"), "INVALID_ARGUMENT", ["csr_pem"]),
            ("PEM with text before it", sign(comm_id, "Subject: abc-1\n" + good), "INVALID_ARGUMENT", ["csr_pem"]),
            ("two PEM blocks", sign(comm_id, good + good2), "INVALID_ARGUMENT", ["csr_pem"]),
            ("empty csr_pem", sign(comm_id, ""), "INVALID_ARGUMENT", ["csr"]),
            ("no CSR at all", sign(comm_id, None), "INVALID_ARGUMENT", ["csr"]),
            ("oversized PEM CSR (> 16 KiB)", sign(comm_id, big), "INVALID_ARGUMENT", ["csr_pem", str(MAX_CSR_BYTES)]),
            ("oversized DER CSR (> 16 KiB)", sign(comm_id, big_der), "INVALID_ARGUMENT", ["csr_der", str(MAX_CSR_BYTES)]),
            ("oversized PEM made of whitespace", sign(comm_id, good + " " * MAX_CSR_BYTES),
             "INVALID_ARGUMENT", ["csr_pem", str(MAX_CSR_BYTES)]),
            # Proof of possession.
            ("bad CSR signature (DER)", sign(comm_id, bad_sig), "INVALID_ARGUMENT", ["csr_der", "signature"]),
            ("bad CSR signature (PEM)", sign(comm_id, der_to_pem(bad_sig)), "INVALID_ARGUMENT", ["csr_pem", "signature"]),
            ("signed part altered", sign("abd-1", bad_tbs), "INVALID_ARGUMENT", ["csr_der", "signature"]),
            # Common Name.
            ("CN case: ABC-1 for abc-1", sign(comm_id, upper), "INVALID_ARGUMENT", ["csr_pem", "comm_id"]),
            ("CN case: abc-1 for ABC-1", sign("ABC-1", lower_for_upper), "INVALID_ARGUMENT", ["csr_pem", "comm_id"]),
            ("CN with a trailing space", sign(comm_id, trailing), "INVALID_ARGUMENT", ["csr_pem", "comm_id"]),
            ("CN with a leading space", sign(comm_id, leading), "INVALID_ARGUMENT", ["csr_pem", "comm_id"]),
            ("two CNs, both equal", sign(comm_id, two_cns), "INVALID_ARGUMENT", ["csr_pem", "Common Name"]),
            ("two CNs, different", sign(comm_id, two_cns_differ), "INVALID_ARGUMENT", ["csr_pem", "Common Name"]),
            ("no CN", sign(comm_id, no_cn), "INVALID_ARGUMENT", ["csr_pem", "Common Name"]),
            # The device.
            ("unknown device", sign("ghost-1", ghost), "NOT_FOUND", ["ghost-1"]),
            ("suspended device", sign("susp-1", susp), "FAILED_PRECONDITION", ["susp-1", "suspended"]),
            ("decommissioned device", sign("decom-1", decom), "FAILED_PRECONDITION", ["decom-1", "decommissioned"]),
            ("empty comm_id", sign("", good), "INVALID_ARGUMENT", ["comm_id"]),
            ("malformed comm_id", sign("abc/1", good), "INVALID_ARGUMENT", ["comm_id"]),
            # Keys.
            ("RSA-1024", sign(comm_id, rsa1024), "INVALID_ARGUMENT", ["csr_pem", "RSA"]),
            ("curve secp256k1", sign(comm_id, k256), "INVALID_ARGUMENT", ["csr_pem"]),
            ("curve P-521", sign(comm_id, p521), "INVALID_ARGUMENT", ["csr_pem"]),
            ("Ed448", sign(comm_id, ed448), "INVALID_ARGUMENT", ["csr_pem"]),
            # Extensions.
            ("subjectAltName DNS in a device CSR", sign(comm_id, san_dns), "INVALID_ARGUMENT",
             ["csr_pem", "subjectAltName"]),
            ("subjectAltName IP in a device CSR", sign(comm_id, san_ip), "INVALID_ARGUMENT",
             ["csr_pem", "subjectAltName"]),
            ("another extension requested (nsComment)", sign(comm_id, other_ext), "INVALID_ARGUMENT", ["csr_pem"]),
            # Request fields.
            ("missing request_id", sign(comm_id, good, request_id=""), "INVALID_ARGUMENT", ["request_id"]),
            ("request_id of 129 characters", sign(comm_id, good, request_id="r" * 129), "INVALID_ARGUMENT",
             ["request_id"]),
            ("request_id with a space", sign(comm_id, good, request_id="r 1"), "INVALID_ARGUMENT", ["request_id"]),
            ("unknown profile", sign(comm_id, good, profile="gold"), "INVALID_ARGUMENT", ["profile"]),
            ("a broker profile for a device", sign(comm_id, good, profile="broker"), "INVALID_ARGUMENT", ["profile"]),
            ("negative validity", sign(comm_id, good, validity="-3600s"), "INVALID_ARGUMENT", ["validity"]),
        ]
        self.check_cases(db, cases)
        self.assertEqual(self.count(db), 0)
        self.assertEqual(self.count(db, "certificates", "status = 'reserved'"), 0)

        # After all that, the good CSR still goes through, once.
        cert = self.sign(client, comm_id, good)
        self.assertVerifies(cert["certificatePem"], cert["chainPem"], purpose="sslclient")
        self.assertEqual(self.count(db), 1)

    def test_broker_csr_catalogue(self):
        db, server, client = self.serve("badbroker")
        self.register_broker(client, "mqtt-1", dns=["mqtt.example.com", "localhost"], ips=["127.0.0.1"])
        self.register_broker(client, "bare-1")
        _, csr = self.pki.csr("broker", "/CN=mqtt.example.com")
        _, other_host = self.pki.csr("other-host", "/CN=other.example.com")
        _, bare = self.pki.csr("bare", "/CN=bare-1")
        _, rsa1024 = self.pki.csr("b-rsa1024", "/CN=mqtt.example.com", key="rsa1024")
        _, san_other = self.pki.csr("b-san", "/CN=mqtt.example.com", addext=["subjectAltName=DNS:evil.example.com"])
        sign = lambda broker, c, **kw: (lambda: self.sign_broker(client, broker, c, **kw))
        cases = [
            ("a DNS name not in the allow-list", sign("mqtt-1", csr, dnsNames=["evil.example.com"]),
             "INVALID_ARGUMENT", ["dns_names", "evil.example.com"]),
            ("an allowed name and one not allowed", sign("mqtt-1", csr, dnsNames=["localhost", "evil.example.com"]),
             "INVALID_ARGUMENT", ["dns_names", "evil.example.com"]),
            ("an IP address not in the allow-list", sign("mqtt-1", csr, ipAddresses=["10.1.2.3"]),
             "INVALID_ARGUMENT", ["ip_addresses", "10.1.2.3"]),
            ("a SAN not allowed requested in the CSR", sign("mqtt-1", san_other),
             "INVALID_ARGUMENT", ["evil.example.com"]),
            ("a CSR CN for another host", sign("mqtt-1", other_host), "INVALID_ARGUMENT", ["csr_pem"]),
            ("unregistered broker", sign("nowhere-1", csr), "NOT_FOUND", ["nowhere-1"]),
            ("malformed broker_id", sign("Bad_Broker", csr), "INVALID_ARGUMENT", ["broker_id"]),
            ("RSA-1024 broker key", sign("mqtt-1", rsa1024), "INVALID_ARGUMENT", ["csr_pem"]),
            ("missing request_id", sign("mqtt-1", csr, requestId=""), "INVALID_ARGUMENT", ["request_id"]),
            ("malformed CSR", sign("mqtt-1", "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
                                             "-----END CERTIFICATE REQUEST-----\n"), "INVALID_ARGUMENT", ["csr_pem"]),
        ]
        self.check_cases(db, cases)
        # proto (SignBrokerCsr): "INVALID_ARGUMENT (dns_names[i] or ip_addresses[i]) for a name
        # outside the allow-list, or when the allow-list is empty".
        self.check_cases(db, [("a broker with an empty allow-list", sign("bare-1", bare), "INVALID_ARGUMENT",
                               ["bare-1"])])
        self.assertEqual(self.count(db), 0)
        cert = self.ok(self.sign_broker(client, "mqtt-1", csr, dnsNames=["mqtt.example.com"]), "good broker CSR")
        self.assertEqual(cert["certificate"]["dnsNames"], ["mqtt.example.com"])
        self.assertEqual(cert["certificate"]["ipAddresses"], [])
        self.assertEqual(self.count(db), 1)

    def test_ca_not_initialised(self):
        db, server, client = self.serve("noca", init=False)
        self.register(client, "lonely-1")
        self.register_broker(client, "mqtt-1", dns=["localhost"])
        _, csr = self.pki.csr("lonely", "/CN=lonely-1")
        _, bcsr = self.pki.csr("lonely-broker", "/CN=localhost")
        self.check_cases(db, [
            ("SignDeviceCsr before InitializeHierarchy", lambda: self.sign_call(client, "lonely-1", csr),
             "FAILED_PRECONDITION", ["InitializeHierarchy"]),
            ("SignBrokerCsr before InitializeHierarchy", lambda: self.sign_broker(client, "mqtt-1", bcsr),
             "FAILED_PRECONDITION", ["InitializeHierarchy"]),
            ("GetTrustBundle before InitializeHierarchy",
             lambda: client.call("GetTrustBundle", {}, service="fleetca.v1.CertificateAuthorityService"),
             "FAILED_PRECONDITION", []),
        ])
        self.assertEqual(self.count(db, "issuers"), 0)
        # Once initialised, the same request goes through.
        self.ok(client.call("InitializeHierarchy", {}, service="fleetca.v1.CertificateAuthorityService"))
        cert = self.sign(client, "lonely-1", csr)
        self.assertVerifies(cert["certificatePem"], cert["chainPem"], purpose="sslclient")


if __name__ == "__main__":
    unittest.main()
