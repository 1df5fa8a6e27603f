"""AclService as an operator drives it with a reflection client (buf curl): the built-in
profiles, profiles with substitutions, assignments to every kind of subject, ResolveAcl,
and the refusals (each naming its field, nothing written)."""

import time
import unittest

from test_issuance import IssuanceTestCase

ACL = "fleetca.v1.AclService"
AUTH = "fleetca.v1.BrokerAuthService"
IDENTITY = "fleetca.v1.IdentityService"
REVOCATION = "fleetca.v1.RevocationService"


class AclTest(IssuanceTestCase):

    def acl(self, client, method, request):
        return client.call(method, request, service=ACL)

    def resolve(self, client, kind, principal_id):
        return self.ok(self.acl(client, "ResolveAcl", {
            "principal": {"type": f"PRINCIPAL_TYPE_{kind}", "id": principal_id}}), principal_id)

    @staticmethod
    def rules(resolved):
        return [(r["topicFilter"], r["access"]) for r in resolved.get("rules", [])]

    def test_profiles_assignments_and_resolution(self):
        db, server, client = self.serve("acl")
        # The built-in profiles, and every device gets its own subtree.
        listed = self.ok(self.acl(client, "ListAclProfiles", {}))["profiles"]
        self.assertEqual([(p["name"], p.get("builtin", False)) for p in listed],
                         [("controller", True), ("device", True), ("watcher", True)])
        self.ok(client.call("RegisterDevice", {"device": {
            "commId": "imei-1", "attributes": {"site": "lyon"}, "groups": ["line-a"]}}))
        self.ok(client.call("RegisterDevice", {"device": {"commId": "imei-2"}}))
        self.ok(client.call("RegisterDevice", {"device": {
            "commId": "imei-3", "attributes": {"site": "a/b"}, "groups": ["line-a"]}}))
        self.assertEqual(self.rules(self.resolve(client, "DEVICE", "imei-1")),
                         [("devices/imei-1/#", "ACL_ACCESS_READWRITE")])

        # A profile with substitutions, assigned to a group.
        created = self.ok(self.acl(client, "CreateAclProfile", {"profile": {
            "name": "site-telemetry", "description": "per-site telemetry",
            "rules": [{"topicPattern": "sites/%{site}/devices/%c/#", "access": "ACL_ACCESS_WRITE"},
                      {"topicPattern": "sites/%{site}/cmd/+", "access": "ACL_ACCESS_READ"},
                      {"topicPattern": "secrets/#", "access": "ACL_ACCESS_DENY"},
                      {"topicPattern": "100%%/%u", "access": "ACL_ACCESS_SUBSCRIBE"}]}}))["profile"]
        self.assertFalse(created.get("builtin", False))
        self.assertEqual(created["etag"], "1")
        assigned = self.ok(self.acl(client, "AssignAclProfile", {"assignment": {
            "subjectType": "ACL_SUBJECT_TYPE_GROUP", "subjectId": "line-a",
            "profileName": "site-telemetry"}}))
        self.assertFalse(assigned.get("alreadyAssigned", False))
        again = self.ok(self.acl(client, "AssignAclProfile", {"assignment": {
            "subjectType": "ACL_SUBJECT_TYPE_GROUP", "subjectId": "line-a",
            "profileName": "site-telemetry"}}))
        self.assertTrue(again["alreadyAssigned"])
        resolved = self.resolve(client, "DEVICE", "imei-1")
        self.assertTrue(resolved["active"])
        self.assertEqual(resolved["profileNames"], ["device", "site-telemetry"])
        self.assertEqual(self.rules(resolved), [
            ("secrets/#", "ACL_ACCESS_DENY"),                       # DENY first
            ("100%/imei-1", "ACL_ACCESS_SUBSCRIBE"),
            ("devices/imei-1/#", "ACL_ACCESS_READWRITE"),
            ("sites/lyon/cmd/+", "ACL_ACCESS_READ"),
            ("sites/lyon/devices/imei-1/#", "ACL_ACCESS_WRITE")])
        by_filter = {r["topicFilter"]: r for r in resolved["rules"]}
        self.assertEqual(by_filter["sites/lyon/cmd/+"]["subjectType"], "ACL_SUBJECT_TYPE_GROUP")
        self.assertEqual(by_filter["sites/lyon/cmd/+"]["topicPattern"], "sites/%{site}/cmd/+")
        self.assertEqual(by_filter["devices/imei-1/#"]["subjectType"],
                         "ACL_SUBJECT_TYPE_ALL_DEVICES")
        # A value that would add a level is never substituted: the rules are skipped.
        resolved = self.resolve(client, "DEVICE", "imei-3")
        self.assertNotIn("sites/a/b/cmd/+", [f for f, _ in self.rules(resolved)])
        skipped = resolved["skippedRules"]
        self.assertEqual(len(skipped), 2, skipped)
        self.assertIn("attribute site holds '/'", skipped[0]["reason"])
        # A device outside the group has only its subtree; a suspended one is inactive.
        self.assertEqual(self.resolve(client, "DEVICE", "imei-2")["profileNames"], ["device"])
        self.ok(client.call("SetDeviceStatus", {"commId": "imei-2",
                                                "status": "DEVICE_STATUS_SUSPENDED"}))
        self.assertFalse(self.resolve(client, "DEVICE", "imei-2").get("active", False))

        # An identity (a watcher) gets what is assigned to its name.
        self.ok(client.call("IssueIdentity", {
            "name": "watch-1", "role": "IDENTITY_ROLE_MQTT_CLIENT",
            "generateKeyAlgorithm": "KEY_ALGORITHM_ECDSA_P256"}, service=IDENTITY))
        self.ok(self.acl(client, "AssignAclProfile", {"assignment": {
            "subjectType": "ACL_SUBJECT_TYPE_IDENTITY", "subjectId": "watch-1",
            "profileName": "watcher"}}))
        self.assertEqual(self.rules(self.resolve(client, "IDENTITY", "watch-1")),
                         [("#", "ACL_ACCESS_READ")])

        # Update with the etag; a stale one is ABORTED and changes nothing.
        updated = self.ok(self.acl(client, "UpdateAclProfile", {
            "profile": {"name": "site-telemetry",
                        "rules": [{"topicPattern": "sites/%{site}/#", "access": "ACL_ACCESS_READ"}]},
            "updateMask": "rules", "etag": "1"}))["profile"]
        self.assertEqual(updated["etag"], "2")
        self.assertEqual(updated["description"], "per-site telemetry")
        r = self.acl(client, "UpdateAclProfile", {
            "profile": {"name": "site-telemetry", "description": "x"},
            "updateMask": "description", "etag": "1"})
        self.assertCode(r, "ABORTED")
        self.assertIn(("sites/lyon/#", "ACL_ACCESS_READ"),
                      self.rules(self.resolve(client, "DEVICE", "imei-1")))

        # Deleting: never a built-in, never an assigned profile.
        self.assertRefused(self.acl(client, "DeleteAclProfile", {"name": "device"}),
                           "FAILED_PRECONDITION", "name")
        self.assertRefused(self.acl(client, "DeleteAclProfile", {"name": "site-telemetry"}),
                           "FAILED_PRECONDITION", "name")
        self.ok(self.acl(client, "UnassignAclProfile", {"assignment": {
            "subjectType": "ACL_SUBJECT_TYPE_GROUP", "subjectId": "line-a",
            "profileName": "site-telemetry"}}))
        self.assertRefused(self.acl(client, "UnassignAclProfile", {"assignment": {
            "subjectType": "ACL_SUBJECT_TYPE_GROUP", "subjectId": "line-a",
            "profileName": "site-telemetry"}}), "NOT_FOUND", "assignment")
        self.ok(self.acl(client, "DeleteAclProfile", {"name": "site-telemetry", "etag": "2"}))
        self.assertRefused(self.acl(client, "GetAclProfile", {"name": "site-telemetry"}),
                           "NOT_FOUND", "name")

        # Assignments list, filtered and paged.
        page = self.ok(self.acl(client, "ListAclAssignments", {"pageSize": 1}))
        self.assertEqual(len(page["assignments"]), 1)
        rest = self.ok(self.acl(client, "ListAclAssignments", {"pageToken": page["nextPageToken"]}))
        subjects = [(a["subjectType"], a.get("subjectId", ""), a["profileName"])
                    for a in page["assignments"] + rest["assignments"]]
        self.assertEqual(sorted(subjects), sorted([
            ("ACL_SUBJECT_TYPE_ALL_DEVICES", "", "device"),
            ("ACL_SUBJECT_TYPE_IDENTITY", "watch-1", "watcher")]))
        only = self.ok(self.acl(client, "ListAclAssignments", {"profileName": "watcher"}))
        self.assertEqual(len(only["assignments"]), 1)

        # Every change is in the change log (brokers follow it) and audited.
        log = db.query("SELECT string_agg(entity_type || ':' || entity_key, ',' ORDER BY revision) "
                       "FROM change_log WHERE entity_type LIKE 'acl%' AND entity_key LIKE '%site%'")
        self.assertIn("acl_profile:site-telemetry", log)
        self.assertIn("acl_assignment:group/line-a/site-telemetry", log)
        actions = db.query("SELECT string_agg(DISTINCT action, ',') FROM audit_log "
                           "WHERE action LIKE '%AclProfile'")
        for action in ("CreateAclProfile", "UpdateAclProfile", "DeleteAclProfile",
                       "AssignAclProfile", "UnassignAclProfile"):
            self.assertIn(action, actions)

    def test_bad_input_names_the_field_and_writes_nothing(self):
        db, server, client = self.serve("aclbad")
        self.ok(client.call("RegisterDevice", {"device": {"commId": "imei-9"}}))
        before = db.query("SELECT count(*) FROM change_log WHERE entity_type <> 'crl'")

        def profile(pattern, access="ACL_ACCESS_READ", name="p1"):
            return {"profile": {"name": name, "rules": [
                {"topicPattern": "ok/#", "access": "ACL_ACCESS_READ"},
                {"topicPattern": pattern, "access": access}]}}

        cases = [
            (profile("a/#/b"), "INVALID_ARGUMENT", "profile.rules[1].topic_pattern"),
            (profile("a+/b"), "INVALID_ARGUMENT", "profile.rules[1].topic_pattern"),
            (profile("dev/%x"), "INVALID_ARGUMENT", "profile.rules[1].topic_pattern"),
            (profile("dev/%{site"), "INVALID_ARGUMENT", "profile.rules[1].topic_pattern"),
            (profile("dev/%{}"), "INVALID_ARGUMENT", "profile.rules[1].topic_pattern"),
            (profile(""), "INVALID_ARGUMENT", "profile.rules[1].topic_pattern"),
            (profile("a\u0000b"), "INVALID_ARGUMENT", "profile.rules[1].topic_pattern"),
            (profile("x" * 1025), "INVALID_ARGUMENT", "profile.rules[1].topic_pattern"),
            (profile("ok", access="ACL_ACCESS_UNSPECIFIED"), "INVALID_ARGUMENT",
             "profile.rules[1].access"),
            (profile("ok", name="Bad Name"), "INVALID_ARGUMENT", "profile.name"),
            (profile("ok", name=""), "INVALID_ARGUMENT", "profile.name"),
            ({"profile": {"name": "p2", "rules": [{"topicPattern": f"r/{i}",
                                                   "access": "ACL_ACCESS_READ"}
                                                  for i in range(65)]}},
             "INVALID_ARGUMENT", "profile.rules"),
            ({"profile": {"name": "p3", "description": "x" * 257}}, "INVALID_ARGUMENT",
             "profile.description"),
            ({"profile": {"name": "device", "rules": []}}, "ALREADY_EXISTS", "profile.name"),
            ({}, "INVALID_ARGUMENT", "profile"),
        ]
        for request, code, field in cases:
            with self.subTest(field=field, request=str(request)[:80]):
                self.assertRefused(self.acl(client, "CreateAclProfile", request), code, field)

        def assignment(subject_type, subject_id, profile_name="device"):
            return {"assignment": {"subjectType": subject_type, "subjectId": subject_id,
                                   "profileName": profile_name}}

        cases = [
            (assignment("ACL_SUBJECT_TYPE_DEVICE", "nope"), "NOT_FOUND", "assignment.subject_id"),
            (assignment("ACL_SUBJECT_TYPE_DEVICE", "a/b"), "INVALID_ARGUMENT",
             "assignment.subject_id"),
            (assignment("ACL_SUBJECT_TYPE_IDENTITY", "nobody"), "NOT_FOUND",
             "assignment.subject_id"),
            (assignment("ACL_SUBJECT_TYPE_ALL_DEVICES", "x"), "INVALID_ARGUMENT",
             "assignment.subject_id"),
            (assignment("ACL_SUBJECT_TYPE_GROUP", "Line A"), "INVALID_ARGUMENT",
             "assignment.subject_id"),
            (assignment("ACL_SUBJECT_TYPE_DEVICE", "imei-9", "nope"), "NOT_FOUND",
             "assignment.profile_name"),
            (assignment("ACL_SUBJECT_TYPE_UNSPECIFIED", "imei-9"), "INVALID_ARGUMENT",
             "assignment.subject_type"),
        ]
        for request, code, field in cases:
            with self.subTest(field=field, request=str(request)[:80]):
                self.assertRefused(self.acl(client, "AssignAclProfile", request), code, field)

        for request, code, field in [
                ({"profile": {"name": "device"}}, "INVALID_ARGUMENT", "update_mask"),
                ({"profile": {"name": "device"}, "updateMask": "builtin"}, "INVALID_ARGUMENT",
                 "update_mask"),
                ({"profile": {"name": "nope", "description": "x"}, "updateMask": "description"},
                 "NOT_FOUND", "name"),
                ({"profile": {"name": "device", "description": "x"}, "updateMask": "description",
                  "etag": "zz"}, "INVALID_ARGUMENT", "etag")]:
            with self.subTest(field=field, request=str(request)[:80]):
                self.assertRefused(self.acl(client, "UpdateAclProfile", request), code, field)
        for request, code, field in [
                ({"principal": {"type": "PRINCIPAL_TYPE_DEVICE", "id": "nope"}}, "NOT_FOUND",
                 "nope"),
                ({"principal": {"type": "PRINCIPAL_TYPE_DEVICE", "id": "a/b"}},
                 "INVALID_ARGUMENT", "principal.id"),
                ({"principal": {"id": "imei-9"}}, "INVALID_ARGUMENT", "principal.type"),
                ({}, "INVALID_ARGUMENT", "principal")]:
            with self.subTest(field=field, request=str(request)[:80]):
                self.assertRefused(self.acl(client, "ResolveAcl", request), code, field)
        self.assertRefused(self.acl(client, "ListAclProfiles", {"pageSize": -1}),
                           "INVALID_ARGUMENT", "page_size")
        self.assertRefused(self.acl(client, "ListAclAssignments", {"pageToken": "garbage"}),
                           "INVALID_ARGUMENT", "page_token")
        # Nothing was written by any of them.
        self.assertEqual(db.query("SELECT count(*) FROM change_log WHERE entity_type <> 'crl'"), before)
        self.assertEqual(db.query("SELECT count(*) FROM acl_profiles"), "3")
        self.assertEqual(db.query("SELECT count(*) FROM acl_assignments"), "1")

    def check(self, client, comm_id, op, topic, kind="DEVICE"):
        return client.call("CheckTopic", {
            "principal": {"type": f"PRINCIPAL_TYPE_{kind}", "id": comm_id},
            "operation": f"TOPIC_OPERATION_{op}", "topic": topic}, service=AUTH)

    def wait_answer(self, client, comm_id, op, topic, allowed, reason=None, timeout=10):
        """Polls CheckTopic until it answers `allowed` (the index follows the change log)."""
        deadline = time.monotonic() + timeout
        while True:
            body = self.ok(self.check(client, comm_id, op, topic))
            if body.get("allowed", False) == allowed and (
                    reason is None or body.get("denyReason") == reason):
                return body
            self.assertLess(time.monotonic(), deadline, f"{comm_id} {op} {topic}: {body}")
            time.sleep(0.05)

    def test_check_topic_answers_from_the_index_and_follows_changes(self):
        db, server, client = self.serve("acltopic")
        self.ok(client.call("RegisterDevice", {"device": {"commId": "imei-1",
                                                          "attributes": {"site": "lyon"}}}))
        self.ok(client.call("RegisterDevice", {"device": {"commId": "imei-2"}}))
        # The device's own subtree (the built-in "device" profile for all devices).
        body = self.wait_answer(client, "imei-1", "PUBLISH", "devices/imei-1/up", True)
        self.assertEqual(body["matchedRule"]["topicFilter"], "devices/imei-1/#")
        self.assertEqual(body["matchedRule"]["profileName"], "device")
        self.assertGreater(int(body["revision"]), 0)
        self.assertEqual(body["cacheTtl"], "2s")
        body = self.ok(self.check(client, "imei-1", "PUBLISH", "devices/imei-2/up"))
        self.assertFalse(body.get("allowed", False))
        self.assertEqual(body["denyReason"], "TOPIC_DENY_REASON_NO_MATCHING_RULE")
        self.assertTrue(self.ok(self.check(client, "imei-1", "SUBSCRIBE",
                                           "devices/imei-1/+/cmd")).get("allowed"))
        self.assertFalse(self.ok(self.check(client, "imei-1", "SUBSCRIBE",
                                            "devices/+/cmd")).get("allowed", False))
        self.assertEqual(self.ok(self.check(client, "nope", "PUBLISH", "a"))["denyReason"],
                         "TOPIC_DENY_REASON_PRINCIPAL_UNKNOWN")
        # A DENY rule assigned to the device wins over its subtree, as soon as it commits.
        self.ok(self.acl(client, "CreateAclProfile", {"profile": {"name": "no-fw", "rules": [
            {"topicPattern": "devices/%c/firmware/#", "access": "ACL_ACCESS_DENY"},
            {"topicPattern": "sites/%{site}/#", "access": "ACL_ACCESS_READ"}]}}))
        self.ok(self.acl(client, "AssignAclProfile", {"assignment": {
            "subjectType": "ACL_SUBJECT_TYPE_DEVICE", "subjectId": "imei-1",
            "profileName": "no-fw"}}))
        body = self.wait_answer(client, "imei-1", "PUBLISH", "devices/imei-1/firmware/v2", False,
                                "TOPIC_DENY_REASON_DENY_RULE")
        self.assertEqual(body["matchedRule"]["topicPattern"], "devices/%c/firmware/#")
        self.assertEqual(body["matchedRule"]["subjectType"], "ACL_SUBJECT_TYPE_DEVICE")
        self.assertTrue(self.ok(self.check(client, "imei-1", "RECEIVE", "sites/lyon/alerts"))
                        .get("allowed"))
        self.assertFalse(self.ok(self.check(client, "imei-1", "PUBLISH", "sites/lyon/alerts"))
                         .get("allowed", False))
        # Attributes and status follow the registry.
        self.ok(client.call("UpdateDevice", {"device": {"commId": "imei-1",
                                                        "attributes": {"site": "paris"}},
                                             "updateMask": "attributes"}))
        self.wait_answer(client, "imei-1", "RECEIVE", "sites/paris/alerts", True)
        self.assertFalse(self.ok(self.check(client, "imei-1", "RECEIVE", "sites/lyon/alerts"))
                         .get("allowed", False))
        self.ok(client.call("SetDeviceStatus", {"commId": "imei-1",
                                                "status": "DEVICE_STATUS_SUSPENDED"}))
        self.wait_answer(client, "imei-1", "PUBLISH", "devices/imei-1/up", False,
                         "TOPIC_DENY_REASON_PRINCIPAL_INACTIVE")
        # A restarted server loads the same policy.
        server.stop()
        client = self.start_server(db.url).wait_ready()
        self.wait_answer(client, "imei-1", "PUBLISH", "devices/imei-1/up", False,
                         "TOPIC_DENY_REASON_PRINCIPAL_INACTIVE")
        self.wait_answer(client, "imei-2", "PUBLISH", "devices/imei-2/up", True)
        # Bad requests name the field.
        for request, field in [
                ({"principal": {"type": "PRINCIPAL_TYPE_DEVICE", "id": "imei-2"},
                  "operation": "TOPIC_OPERATION_PUBLISH", "topic": "devices/+/up"}, "topic"),
                ({"principal": {"type": "PRINCIPAL_TYPE_DEVICE", "id": "imei-2"},
                  "operation": "TOPIC_OPERATION_SUBSCRIBE", "topic": "a/#/b"}, "topic"),
                ({"principal": {"type": "PRINCIPAL_TYPE_DEVICE", "id": "imei-2"},
                  "operation": "TOPIC_OPERATION_PUBLISH", "topic": ""}, "topic"),
                ({"principal": {"type": "PRINCIPAL_TYPE_DEVICE", "id": "imei-2"},
                  "topic": "a"}, "operation"),
                ({"principal": {"type": "PRINCIPAL_TYPE_DEVICE", "id": "a/b"},
                  "operation": "TOPIC_OPERATION_PUBLISH", "topic": "a"}, "principal.id"),
                ({"operation": "TOPIC_OPERATION_PUBLISH", "topic": "a"}, "principal")]:
            with self.subTest(field=field, request=str(request)[:80]):
                self.assertRefused(client.call("CheckTopic", request, service=AUTH),
                                   "INVALID_ARGUMENT", field)

    def authorize(self, client, client_id, **certificate):
        return client.call("AuthorizeConnect", {"clientId": client_id, **certificate},
                           service=AUTH)

    def wait_connect(self, client, client_id, reason, timeout=10, **certificate):
        """Polls AuthorizeConnect until it answers with reason (the index follows the log)."""
        deadline = time.monotonic() + timeout
        while True:
            body = self.ok(self.authorize(client, client_id, **certificate))
            if body["denyReason"] == reason:
                return body
            self.assertLess(time.monotonic(), deadline, f"{client_id}: {body}")
            time.sleep(0.05)

    def test_authorize_connect_follows_certificates_and_devices(self):
        db, server, client = self.serve("connect")
        _, cert = self.new_device_cert(client, "imei-1")
        pem = {"certificatePem": cert["certificatePem"]}
        # Known by its PEM, its fingerprint or its serial: allowed, with the username to set
        # and the device's rules.
        body = self.wait_connect(client, "imei-1", "CONNECT_DENY_REASON_UNSPECIFIED", **pem)
        self.assertTrue(body["allowed"])
        self.assertEqual(body["username"], "imei-1")
        self.assertEqual(body["principal"], {"type": "PRINCIPAL_TYPE_DEVICE", "id": "imei-1"})
        self.assertEqual(body["certificateSerial"], cert["serial"])
        self.assertEqual(body["issuerId"], cert["issuerId"])
        self.assertEqual([(r["topicFilter"], r["access"]) for r in body["rules"]],
                         [("devices/imei-1/#", "ACL_ACCESS_READWRITE")])
        self.assertGreater(int(body["revision"]), 0)
        for ref in ({"sha256Fingerprint": cert["sha256Fingerprint"]},
                    {"serial": cert["serial"]},
                    {"serial": cert["serial"], "issuerId": cert["issuerId"]}):
            self.assertTrue(self.ok(self.authorize(client, "imei-1", **ref))["allowed"], ref)
        # The username the client sent is never used; the client id must be the CN.
        body = self.ok(self.authorize(client, "imei-2", username="imei-1", **pem))
        self.assertFalse(body["allowed"])
        self.assertEqual(body["denyReason"], "CONNECT_DENY_REASON_CLIENT_ID_MISMATCH")
        self.assertEqual(body["principal"]["id"], "imei-1")
        self.assertEqual(body["username"], "")
        self.assertEqual(body["rules"], [])
        # Unknown serial under another issuer, unknown fingerprint, a stranger's certificate.
        self.assertEqual(self.ok(self.authorize(client, "imei-1", serial=cert["serial"],
                                                issuerId="operators-1"))["denyReason"],
                         "CONNECT_DENY_REASON_CERTIFICATE_UNKNOWN")
        self.assertEqual(self.ok(self.authorize(client, "imei-1", sha256Fingerprint="ab" * 32))
                         ["denyReason"], "CONNECT_DENY_REASON_CERTIFICATE_UNKNOWN")
        _, stranger = self.pki.self_signed_ca("stranger", "/CN=imei-1")
        with open(stranger) as f:
            body = self.ok(self.authorize(client, "imei-1", certificatePem=f.read()))
        self.assertEqual(body["denyReason"], "CONNECT_DENY_REASON_UNTRUSTED_ISSUER")
        self.assertNotIn("principal", {k: v for k, v in body.items() if v})
        # Suspended, then active again; then the certificate held, then revoked.
        self.ok(client.call("SetDeviceStatus", {"commId": "imei-1",
                                                "status": "DEVICE_STATUS_SUSPENDED", "reason": "t"}))
        self.wait_connect(client, "imei-1", "CONNECT_DENY_REASON_PRINCIPAL_INACTIVE", **pem)
        self.ok(client.call("SetDeviceStatus", {"commId": "imei-1",
                                                "status": "DEVICE_STATUS_ACTIVE", "reason": "t"}))
        self.wait_connect(client, "imei-1", "CONNECT_DENY_REASON_UNSPECIFIED", **pem)
        self.ok(client.call("HoldCertificate", {"serial": cert["serial"]}, service=REVOCATION))
        self.wait_connect(client, "imei-1", "CONNECT_DENY_REASON_CERTIFICATE_ON_HOLD", **pem)
        self.ok(client.call("RevokeCertificate", {"serial": cert["serial"],
                                                  "reason": "REVOCATION_REASON_KEY_COMPROMISE"},
                            service=REVOCATION))
        self.wait_connect(client, "imei-1", "CONNECT_DENY_REASON_CERTIFICATE_REVOKED", **pem)
        # A new certificate is known as soon as its change is applied.
        _, cert2 = self.new_device_cert(client, "imei-1", register=False)
        self.wait_connect(client, "imei-1", "CONNECT_DENY_REASON_UNSPECIFIED",
                          sha256Fingerprint=cert2["sha256Fingerprint"])

        # Bad requests name the field.
        for request, field in [
                ({"clientId": "imei-1"}, "client_certificate"),
                ({"certificatePem": cert["certificatePem"]}, "client_id"),
                ({"clientId": "imei-1", "certificatePem": "junk"}, "certificate_pem"),
                ({"clientId": "imei-1", "certificateDer": "AAAA"}, "certificate_der"),
                ({"clientId": "imei-1", "sha256Fingerprint": "xyz"}, "sha256_fingerprint"),
                ({"clientId": "imei-1", "serial": "not hex"}, "serial")]:
            with self.subTest(field=field):
                self.assertRefused(client.call("AuthorizeConnect", request, service=AUTH),
                                   "INVALID_ARGUMENT", field)


if __name__ == "__main__":
    unittest.main()
