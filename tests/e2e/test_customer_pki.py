"""Customer PKIs (issue "Customer PKIs and Java clients"): a customer's device CA made with the
openssl CLI, registered in fleetca with a reflection client (buf curl) as an external CA;
devices holding its certificates connect through a real mosquitto with the fleetca plugin
when their CN is a registered comm-ID, and are refused when the comm-ID is suspended, when
the serial is revoked in fleetca (a connected device is disconnected), when the CA is
disabled, and when the CN is not registered. A customer CRL made with `openssl ca -gencrl`
is imported and honoured. AuthorizeConnect (the query mode's RPC) answers the same."""

import base64
import os
import subprocess
import time
import unittest

from fleetca_e2e import CALL_TIMEOUT
from test_issuance import CA, ISSUANCE, read, write
from test_plugin import PluginTestCase, REVOCATION

AUTH = "fleetca.v1.BrokerAuthService"


def run(cmd, **kwargs):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120, **kwargs)


class CustomerCa:
    """A customer's device CA as a customer runs it: `openssl x509 -req` to sign, and an
    `openssl ca` database to revoke and publish CRLs."""

    def __init__(self, test, name):
        self.test = test
        self.name = name
        self.key, self.cert = test.pki.self_signed_ca(name, f"/O=Customer/CN={name} Devices CA")
        self.dir = test.pki.path(name + "-db")
        os.makedirs(self.dir, exist_ok=True)
        write(os.path.join(self.dir, "index.txt"), "")
        write(os.path.join(self.dir, "crlnumber"), "1000\n")
        self.config = write(os.path.join(self.dir, "ca.cnf"), "\n".join([
            "[ca]", "default_ca = customer", "[customer]", f"dir = {self.dir}",
            "database = $dir/index.txt", "crlnumber = $dir/crlnumber",
            f"certificate = {self.cert}", f"private_key = {self.key}",
            "default_md = sha256", "default_crl_days = 7", "crl_extensions = crl_ext",
            "[crl_ext]", "authorityKeyIdentifier = keyid:always", ""]))

    def device(self, comm_id, eku="clientAuth", days=365):
        """A key and certificate for comm_id: (cert path, key path, PEM)."""
        key, csr = self.test.pki.csr(f"{self.name}-{comm_id}", f"/CN={comm_id}")
        exts = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature"]
        if eku:
            exts.append(f"extendedKeyUsage={eku}")
        pem = self.test.pki.sign(f"{self.name}-{comm_id}", csr, self.cert, self.key, exts, days)
        return self.test.pki.path(f"{self.name}-{comm_id}.crt"), key, pem

    def revoke(self, cert_path, reason="keyCompromise"):
        run(["openssl", "ca", "-config", self.config, "-revoke", cert_path, "-crl_reason", reason])

    def crl(self):
        out = os.path.join(self.dir, "crl.pem")
        run(["openssl", "ca", "-config", self.config, "-gencrl", "-out", out])
        return read(out)


class CustomerPkiTest(PluginTestCase):
    def ca_call(self, method, request):
        return self.admin.call(method, request, service=CA)

    def register_ca(self, customer, ca_id, accept_unregistered=False):
        body = self.ok(self.ca_call("RegisterExternalCa", {
            "externalCaId": ca_id, "displayName": "Customer devices",
            "certificatePem": read(customer.cert),
            "acceptUnregisteredCertificates": accept_unregistered}), "RegisterExternalCa")
        return body["externalCa"]

    def register_cert(self, comm_id, pem, **extra):
        return self.admin.call("RegisterExternalCertificate",
                               dict({"commId": comm_id, "certificatePem": pem}, **extra),
                               service=ISSUANCE)

    def authorize(self, pem, client_id):
        return self.ok(self.admin.call("AuthorizeConnect", {
            "certificatePem": pem, "clientId": client_id}, service=AUTH), "AuthorizeConnect")

    def update_ca(self, ca_id, **fields):
        mask = ",".join(fields)  # FieldMask in JSON: lowerCamelCase paths
        return self.ok(self.ca_call("UpdateExternalCa", {
            "externalCa": dict({"externalCaId": ca_id}, **fields), "updateMask": mask}),
            "UpdateExternalCa")["externalCa"]

    def assert_connects(self, cert, key, client_id, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            s = self.session(cert, key, client_id)
            code = s.wait_connack()
            s.close()
            if code == 0:
                return
            self.assertLess(time.monotonic(), deadline,
                            f"{client_id}: CONNACK {code}\n{self.mosq.log_text()}")
            time.sleep(0.2)

    def test_customer_devices_connect_through_mosquitto_and_are_refused(self):
        # The mosquitto of start_world trusts fleetca's client CAs and a "foreign" CA at the
        # TLS layer; the customer CA here is that foreign CA's twin made the same way, added
        # to the broker's cafile as an operator would (from the CLIENT_AUTH bundle).
        self.start_world("customer-pki")
        customer = CustomerCa(self, "acme")
        ca = self.register_ca(customer, "acme")
        self.assertTrue(ca["enabled"], ca)
        self.assertFalse(ca.get("acceptUnregisteredCertificates", False), ca)
        self.assertEqual(len(ca["sha256Fingerprint"]), 64, ca)
        bundle = self.trust_bundle(self.admin, "TRUST_BUNDLE_SCOPE_CLIENT_AUTH")
        self.assertIn(read(customer.cert).strip(), bundle["bundlePem"])
        self.assertIn("acme", bundle["issuerIds"])
        self.mosq.close()
        self.clients_ca = bundle["bundlePem"]
        self.mosq = self.start_mosquitto()

        for comm_id in ("ext-1", "ext-2", "ext-3"):
            self.register(self.admin, comm_id)
        cert1, key1, pem1 = customer.device("ext-1")
        cert2, key2, pem2 = customer.device("ext-2")
        cert3, key3, pem3 = customer.device("ext-3")
        body = self.ok(self.register_cert("ext-1", pem1), "RegisterExternalCertificate")
        self.assertTrue(body["certificate"]["external"], body)
        self.assertEqual(body["certificate"]["issuerId"], "acme")
        self.assertEqual(body["certificate"]["status"], "CERTIFICATE_STATUS_ACTIVE")
        self.assertFalse(body.get("alreadyRegistered", False))
        again = self.ok(self.register_cert("ext-1", pem1), "RegisterExternalCertificate again")
        self.assertTrue(again["alreadyRegistered"], again)
        for comm_id, pem in (("ext-2", pem2), ("ext-3", pem3)):
            self.ok(self.register_cert(comm_id, pem), f"RegisterExternalCertificate {comm_id}")

        with self.subTest("a registered certificate connects and publishes on its topic"):
            self.assert_connects(cert1, key1, "ext-1")
            r = self.pub(cert1, key1, "ext-1", "devices/ext-1/up", "hello")
            self.assertEqual(r.returncode, 0, f"{r}\n{self.mosq.log_text()}")
            answer = self.authorize(pem1, "ext-1")
            self.assertTrue(answer["allowed"], answer)
            self.assertEqual(answer["issuerId"], "acme")

        with self.subTest("CN not registered: refused"):
            cert_u, key_u, pem_u = customer.device("ext-unknown")
            self.assert_refused(cert_u, key_u, "ext-unknown", "certificate_unknown")
            refused = self.register_cert("ext-unknown", pem_u)
            self.assertRefused(refused, "NOT_FOUND", "comm_id")
            answer = self.authorize(pem_u, "ext-unknown")
            self.assertFalse(answer["allowed"])
            self.assertEqual(answer["denyReason"], "CONNECT_DENY_REASON_PRINCIPAL_UNKNOWN", answer)

        with self.subTest("comm-ID suspended: refused"):
            self.ok(self.admin.call("SetDeviceStatus", {"commId": "ext-2",
                                                        "status": "DEVICE_STATUS_SUSPENDED",
                                                        "reason": "e2e"}))
            self.assert_refused(cert2, key2, "ext-2", "principal_inactive")

        with self.subTest("revoked in fleetca: a connected device is disconnected, then refused"):
            s = self.session(cert1, key1, "ext-1")
            self.assertEqual(s.wait_connack(), 0, self.mosq.log_text())
            serial = body["certificate"]["serial"]
            revoked = self.ok(self.admin.call("RevokeCertificate", {
                "serial": serial, "issuerId": "acme", "reason": "REVOCATION_REASON_KEY_COMPROMISE"},
                service=REVOCATION), "RevokeCertificate")
            self.assertEqual(revoked["certificate"]["status"], "CERTIFICATE_STATUS_REVOKED")
            self.assertTrue(s.gone.wait(15), "the revoked device was not disconnected:\n"
                            + self.mosq.log_text())
            self.assert_refused(cert1, key1, "ext-1", "certificate_revoked")
            answer = self.authorize(pem1, "ext-1")
            self.assertEqual(answer["denyReason"], "CONNECT_DENY_REASON_CERTIFICATE_REVOKED", answer)

        with self.subTest("CA disabled: refused; enabled again: accepted"):
            self.assert_connects(cert3, key3, "ext-3")
            disabled = self.update_ca("acme", enabled=False)
            self.assertFalse(disabled.get("enabled", False), disabled)
            self.assert_refused(cert3, key3, "ext-3", "untrusted_issuer")
            answer = self.authorize(pem3, "ext-3")
            self.assertEqual(answer["denyReason"], "CONNECT_DENY_REASON_ISSUER_DISABLED", answer)
            self.assertNotIn(read(customer.cert).strip(), self.trust_bundle(
                self.admin, "TRUST_BUNDLE_SCOPE_CLIENT_AUTH")["bundlePem"])
            refused = self.register_cert("ext-3", pem3)
            self.assertRefused(refused, "FAILED_PRECONDITION", "disabled")
            self.update_ca("acme", enabled=True)
            self.assert_connects(cert3, key3, "ext-3")

        with self.subTest("accept_unregistered_certificates: a registered comm-ID's CN suffices"):
            self.register(self.admin, "ext-4")
            cert4, key4, pem4 = customer.device("ext-4")
            self.assert_refused(cert4, key4, "ext-4", "certificate_unknown")
            self.update_ca("acme", acceptUnregisteredCertificates=True)
            self.assert_connects(cert4, key4, "ext-4")
            answer = self.authorize(pem4, "ext-4")
            self.assertTrue(answer["allowed"], answer)
            self.assertEqual(answer["principal"]["id"], "ext-4")

        with self.subTest("a customer CRL imported: listed serials are refused"):
            customer.revoke(cert4)
            crl_pem = customer.crl()
            imported = self.ok(self.admin.call("ImportCrl", {
                "externalCaId": "acme", "crlPem": crl_pem}, service=REVOCATION), "ImportCrl")
            self.assertEqual(imported["entryCount"], "1", imported)
            self.assertEqual(imported["crlNumber"], "4096", imported)  # crlnumber 1000 (hex)
            again = self.ok(self.admin.call("ImportCrl", {
                "externalCaId": "acme", "crlPem": crl_pem}, service=REVOCATION))
            self.assertTrue(again["alreadyImported"], again)
            self.assert_refused(cert4, key4, "ext-4", "certificate_revoked")
            answer = self.authorize(pem4, "ext-4")
            self.assertEqual(answer["denyReason"], "CONNECT_DENY_REASON_CERTIFICATE_REVOKED", answer)
            # ext-3, registered and not listed, still connects; the CRL is served back.
            self.assert_connects(cert3, key3, "ext-3")
            got = self.ok(self.admin.call("GetCrl", {"issuerId": "acme",
                                                     "encoding": "CRL_ENCODING_PEM"},
                                          service=REVOCATION), "GetCrl acme")
            self.assertEqual(got["crlPem"].strip(), crl_pem.strip())

    def test_registration_checks(self):
        self.db, self.server, self.admin = self.serve_tls("customer-checks")
        customer = CustomerCa(self, "globex")
        leaf_path, _, leaf_pem = customer.device("not-a-ca")
        with self.subTest("the CA certificate is checked"):
            self.assertRefused(self.ca_call("RegisterExternalCa", {
                "externalCaId": "globex", "certificatePem": leaf_pem}),
                "INVALID_ARGUMENT", "certificate_pem")
            self.assertRefused(self.ca_call("RegisterExternalCa", {
                "externalCaId": "globex", "certificatePem": "junk"}),
                "INVALID_ARGUMENT", "certificate_pem")
            own = self.issuer(self.admin, "devices-1")["certificatePem"]
            self.assertRefused(self.ca_call("RegisterExternalCa", {
                "externalCaId": "globex", "certificatePem": own}),
                "INVALID_ARGUMENT", "certificate_pem")
            for bad_id in ("devices-3", "Globex", "globex-chain-1", "", "a" * 64):
                self.assertRefused(self.ca_call("RegisterExternalCa", {
                    "externalCaId": bad_id, "certificatePem": read(customer.cert)}),
                    "INVALID_ARGUMENT", "external_ca_id", bad_id)
        ca = self.register_ca(customer, "globex")
        with self.subTest("the customer CA is in the PKCS#12 truststore, as keytool lists it"):
            body = self.ok(self.ca_call("GetTrustBundle", {
                "scope": "TRUST_BUNDLE_SCOPE_CLIENT_AUTH", "format": "TRUST_BUNDLE_FORMAT_PKCS12",
                "keystorePassword": "changeit"}), "GetTrustBundle PKCS12")
            self.assertEqual(body["issuerIds"][-1], "globex", body["issuerIds"])
            path = write(self.pki.path("trust.p12"), base64.b64decode(body["keystore"]))
            listing = run(["keytool", "-list", "-storetype", "PKCS12", "-keystore", path,
                           "-storepass", "changeit"]).stdout
            self.assertRegex(listing, r"(?m)^globex, .*trustedCertEntry")
            self.assertEqual(listing.count("trustedCertEntry"), len(body["issuerIds"]), listing)
        with self.subTest("ids and certificates are registered once"):
            self.assertRefused(self.ca_call("RegisterExternalCa", {
                "externalCaId": "globex", "certificatePem": read(customer.cert)}),
                "ALREADY_EXISTS", "globex")
            self.assertRefused(self.ca_call("RegisterExternalCa", {
                "externalCaId": "globex-2", "certificatePem": read(customer.cert)}),
                "ALREADY_EXISTS", "certificate_pem")
        with self.subTest("get, list, update with etag, delete only when disabled"):
            got = self.ok(self.ca_call("GetExternalCa", {"externalCaId": "globex"}))["externalCa"]
            self.assertEqual(got, ca)
            listed = self.ok(self.ca_call("ListExternalCas", {}))["externalCas"]
            self.assertEqual([c["externalCaId"] for c in listed], ["globex"])
            self.assertCode(self.ca_call("GetExternalCa", {"externalCaId": "nope"}), "NOT_FOUND")
            self.assertCode(self.ca_call("GetExternalCa", {"externalCaId": "devices-1"}),
                            "INVALID_ARGUMENT")
            self.assertRefused(self.ca_call("DeleteExternalCa", {"externalCaId": "globex"}),
                               "FAILED_PRECONDITION", "disable")
            self.assertRefused(self.ca_call("UpdateExternalCa", {
                "externalCa": {"externalCaId": "globex"}, "updateMask": ""}),
                "INVALID_ARGUMENT", "update_mask")
            self.assertCode(self.ca_call("UpdateExternalCa", {
                "externalCa": {"externalCaId": "globex", "displayName": "x"},
                "updateMask": "displayName", "etag": "999"}), "ABORTED")
        self.register(self.admin, "gx-1")
        with self.subTest("device certificates are checked"):
            _, _, pem = customer.device("gx-1")
            self.assertRefused(self.register_cert("gx-2", pem), "INVALID_ARGUMENT", "Common Name")
            _, _, server_pem = customer.device("gx-1", eku="serverAuth")
            self.assertRefused(self.register_cert("gx-1", server_pem), "INVALID_ARGUMENT",
                               "clientAuth")
            _, own = self.new_device_cert(self.admin, "gx-own")
            self.assertRefused(self.register_cert("gx-own", own["certificatePem"]),
                               "INVALID_ARGUMENT", "fleetca")
            stranger = CustomerCa(self, "stranger")
            _, _, foreign_pem = stranger.device("gx-1")
            self.assertRefused(self.register_cert("gx-1", foreign_pem), "INVALID_ARGUMENT",
                               "external CA")
            self.assertRefused(self.register_cert("gx-1", leaf_pem[:40]), "INVALID_ARGUMENT",
                               "certificate_pem")
            self.register(self.admin, "gx-9", status="DEVICE_STATUS_SUSPENDED")
            _, _, suspended_pem = customer.device("gx-9")
            self.assertRefused(self.register_cert("gx-9", suspended_pem), "FAILED_PRECONDITION",
                               "gx-9")
        with self.subTest("two customer CAs may share serials: issuer_id tells them apart"):
            other = CustomerCa(self, "initech")
            self.register_ca(other, "initech")
            self.register(self.admin, "gx-3")
            self.register(self.admin, "in-3")
            a_key, a_csr = self.pki.csr("gx-3", "/CN=gx-3")
            b_key, b_csr = self.pki.csr("in-3", "/CN=in-3")
            exts = ["basicConstraints=critical,CA:FALSE", "extendedKeyUsage=clientAuth"]
            pems = []
            for name, csr, ca_ in (("gx-3", a_csr, customer), ("in-3", b_csr, other)):
                csr_path = write(self.pki.path(name + ".same.csr"), csr)
                ext = write(self.pki.path(name + ".same.ext"), "[ext]\n" + "\n".join(exts) + "\n")
                out = self.pki.path(name + ".same.crt")
                run(["openssl", "x509", "-req", "-in", csr_path, "-CA", ca_.cert, "-CAkey", ca_.key,
                     "-set_serial", "7", "-days", "30", "-extfile", ext, "-extensions", "ext",
                     "-out", out])
                pems.append(read(out))
            self.ok(self.register_cert("gx-3", pems[0]))
            listed = self.ok(self.admin.call("ListCertificates", {
                "commId": "gx-3", "kind": "CERTIFICATE_KIND_DEVICE"}, service=ISSUANCE))
            self.assertEqual([c["issuerId"] for c in listed["certificates"]], ["globex"], listed)
            self.ok(self.register_cert("in-3", pems[1]))
            ambiguous = self.admin.call("RevokeCertificate", {
                "serial": "07", "reason": "REVOCATION_REASON_SUPERSEDED"}, service=REVOCATION)
            self.assertRefused(ambiguous, "INVALID_ARGUMENT", "issuer_id")
            self.assertRefused(self.admin.call("GetCertificate", {"serial": "07"},
                                               service=ISSUANCE), "INVALID_ARGUMENT", "issuer_id")
            done = self.ok(self.admin.call("RevokeCertificate", {
                "serial": "07", "issuerId": "initech", "reason": "REVOCATION_REASON_SUPERSEDED"},
                service=REVOCATION))
            self.assertEqual(done["certificate"]["commId"], "in-3")
            status = self.ok(self.admin.call("GetRevocationStatus", {
                "serial": "07", "issuerId": "globex"}, service=REVOCATION))
            self.assertEqual(status["status"], "CERTIFICATE_STATUS_ACTIVE", status)
            self.assertEqual(status["issuerId"], "globex", status)
        with self.subTest("delete a disabled CA: gone from every view, its certificates kept"):
            self.update_ca("globex", enabled=False)
            self.ok(self.ca_call("DeleteExternalCa", {"externalCaId": "globex"}))
            self.assertCode(self.ca_call("GetExternalCa", {"externalCaId": "globex"}), "NOT_FOUND")
            self.assertRefused(self.ca_call("RegisterExternalCa", {
                "externalCaId": "globex", "certificatePem": read(customer.cert)}),
                "ALREADY_EXISTS", "globex")
            self.assertEqual(self.count(self.db, where="issuer_id = 'globex'"), 1)


if __name__ == "__main__":
    unittest.main()
