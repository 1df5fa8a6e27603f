"""The hostile-input catalogue: malformed and malicious requests across the API (oversized
fields, invalid UTF-8, embedded NUL, MQTT wildcards and separators in names, SQL
metacharacters, deeply nested, huge or garbage protobufs, negative and huge page sizes,
unknown enum values, wrong roles, no credentials), each answered with its precise code and a
message naming the field, and none changing anything (every table but the audit log, which
records refused calls, is compared before and after).

Most requests go through buf curl (protobuf JSON, as an operator's reflection client
sends them); those JSON cannot carry (invalid UTF-8, raw wire-format abuse) are hand-encoded
protobuf sent with Debian's python3-grpcio as raw bytes."""

import os
import time

import grpc

from test_issuance import BROKERS, ISSUANCE
from test_security import SecurityTestCase

PROTO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto")
REGISTRY = "fleetca.v1.DeviceRegistryService"
CA = "fleetca.v1.CertificateAuthorityService"
REVOCATION = "fleetca.v1.RevocationService"
ACL = "fleetca.v1.AclService"
IDENTITY = "fleetca.v1.IdentityService"
AUDIT = "fleetca.v1.AuditService"
BROKER_AUTH = "fleetca.v1.BrokerAuthService"


# --- a minimal protobuf wire encoder (for what JSON cannot express) ---

def varint(n):
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_bytes(num, payload):
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def field_varint(num, value):
    return varint(num << 3 | 0) + varint(value)


def register_raw(comm_id=b"", display_name=None):
    device = field_bytes(1, comm_id)
    if display_name is not None:
        device += field_bytes(3, display_name)
    return field_bytes(1, device)


class RawClient:
    """Raw bytes to a method, over the admin's TLS credential."""

    def __init__(self, port, tls):
        with open(tls["cacert"], "rb") as f:
            ca = f.read()
        with open(tls["cert"], "rb") as f:
            pem = f.read()
        creds = grpc.ssl_channel_credentials(root_certificates=ca, private_key=pem,
                                             certificate_chain=pem)
        self.channel = grpc.secure_channel(f"localhost:{port}", creds, options=[
            ("grpc.max_send_message_length", 64 << 20)])

    def call(self, service, method, payload):
        fn = self.channel.unary_unary(f"/{service}/{method}")
        try:
            fn(payload, timeout=60)
            return "OK", ""
        except grpc.RpcError as e:
            return e.code().name, e.details() or ""

    def close(self):
        self.channel.close()


class HostileInputTest(SecurityTestCase):

    def state(self, db):
        """A digest of every table but the audit log (refused calls are audited)."""
        tables = db.query("SELECT string_agg(tablename, ' ' ORDER BY tablename) FROM pg_tables "
                          "WHERE schemaname = 'public' AND tablename NOT IN "
                          "('audit_log', 'audit_chain_state', 'broker_streams')").split()
        sql = " UNION ALL ".join(
            f"SELECT '{t}', count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) "
            f"FROM {t} x" for t in tables)
        return db.query(sql)

    def test_catalogue(self):
        db, server, admin = self.serve_tls("hostile")
        # Something to aim at: a device with a certificate, a broker, a viewer, a device
        # credential, a provisioner.
        self.register(admin, "target-1")
        _, cert = self.new_device_cert(admin, "target-2")
        self.register_broker(admin, "mqtt-h", dns=["mqtt.example"])
        viewer = admin.as_(self.issue(admin, "ops-viewer", "viewer"))
        provisioner = admin.as_(self.issue(admin, "station-h", "provisioner"))
        device = admin.as_(self.device_credential(admin, "target-3"))
        anonymous = admin.as_({"cacert": admin.tls["cacert"]})
        raw = RawClient(server.port, admin.tls)
        self.addCleanup(raw.close)
        _, csr = self.pki.csr("target-1", "/CN=target-1")
        _, ghost_csr = self.pki.csr("ghost-1", "/CN=ghost-1")
        time.sleep(1.5)  # let the CRL builder and the audit sequencer settle
        before = self.state(db)

        def j(client, service, method, request):
            return lambda: client.call(method, request, service=service)

        def r(service, method, payload):
            return lambda: raw.call(service, method, payload)

        long_id = "x" * 65
        cases = [
            # --- comm-IDs: length, characters, MQTT wildcards and separators, SQL, NUL ---
            ("comm_id empty", j(admin, REGISTRY, "RegisterDevice", {"device": {"commId": ""}}),
             "INVALID_ARGUMENT", "device.comm_id"),
            ("comm_id 65 characters", j(admin, REGISTRY, "RegisterDevice", {"device": {"commId": long_id}}),
             "INVALID_ARGUMENT", "device.comm_id"),
            ("comm_id 100 KB", j(admin, REGISTRY, "RegisterDevice", {"device": {"commId": "7" * 100000}}),
             "INVALID_ARGUMENT", "device.comm_id"),
            ("comm_id with /", j(admin, REGISTRY, "RegisterDevice", {"device": {"commId": "a/b"}}),
             "INVALID_ARGUMENT", "device.comm_id"),
            ("comm_id with +", j(admin, REGISTRY, "RegisterDevice", {"device": {"commId": "a+"}}),
             "INVALID_ARGUMENT", "device.comm_id"),
            ("comm_id with #", j(admin, REGISTRY, "RegisterDevice", {"device": {"commId": "#"}}),
             "INVALID_ARGUMENT", "device.comm_id"),
            ("comm_id $SYS", j(admin, REGISTRY, "RegisterDevice", {"device": {"commId": "$SYS"}}),
             "INVALID_ARGUMENT", "device.comm_id"),
            ("comm_id with a space", j(admin, REGISTRY, "RegisterDevice", {"device": {"commId": "a b"}}),
             "INVALID_ARGUMENT", "device.comm_id"),
            ("comm_id with NUL", j(admin, REGISTRY, "RegisterDevice", {"device": {"commId": "a\u0000b"}}),
             "INVALID_ARGUMENT", "device.comm_id"),
            ("comm_id non-ASCII", j(admin, REGISTRY, "RegisterDevice", {"device": {"commId": "caf\u00e9"}}),
             "INVALID_ARGUMENT", "device.comm_id"),
            ("comm_id SQL", j(admin, REGISTRY, "RegisterDevice", {"device": {"commId": "x';DROP TABLE devices;--"}}),
             "INVALID_ARGUMENT", "device.comm_id"),
            ("comm_id %c", j(admin, REGISTRY, "RegisterDevice", {"device": {"commId": "%c"}}),
             "INVALID_ARGUMENT", "device.comm_id"),
            ("comm_id invalid UTF-8 (raw)", r(REGISTRY, "RegisterDevice", register_raw(b"ab\xff\xfe")),
             "INVALID_ARGUMENT", "not UTF-8"),
            ("comm_id overlong UTF-8 NUL (raw)", r(REGISTRY, "RegisterDevice", register_raw(b"a\xc0\x80")),
             "INVALID_ARGUMENT", ""),
            ("display_name invalid UTF-8 (raw)",
             r(REGISTRY, "RegisterDevice", register_raw(b"utf8-1", b"Pump \xed\xa0\x80")),
             "INVALID_ARGUMENT", ""),
            # --- other registry fields ---
            ("display_name 100 KB", j(admin, REGISTRY, "RegisterDevice", {"device": {"commId": "ok-1", "displayName": "n" * 100000}}),
             "INVALID_ARGUMENT", "device.display_name"),
            ("display_name with NUL", j(admin, REGISTRY, "RegisterDevice", {"device": {"commId": "ok-2", "displayName": "a\u0000b"}}),
             "INVALID_ARGUMENT", "device.display_name"),
            ("attribute key empty", j(admin, REGISTRY, "RegisterDevice", {"device": {"commId": "ok-3", "attributes": {"": "v"}}}),
             "INVALID_ARGUMENT", "device.attributes"),
            ("attribute key with /", j(admin, REGISTRY, "RegisterDevice", {"device": {"commId": "ok-4", "attributes": {"a/b": "v"}}}),
             "INVALID_ARGUMENT", "device.attributes"),
            ("attribute value 100 KB", j(admin, REGISTRY, "RegisterDevice", {"device": {"commId": "ok-5", "attributes": {"k": "v" * 100000}}}),
             "INVALID_ARGUMENT", "device.attributes"),
            ("1,000 attributes", j(admin, REGISTRY, "RegisterDevice", {"device": {"commId": "ok-6", "attributes": {f"k{i}": "v" for i in range(1000)}}}),
             "INVALID_ARGUMENT", "device.attributes"),
            ("group with #", j(admin, REGISTRY, "RegisterDevice", {"device": {"commId": "ok-7", "groups": ["line#1"]}}),
             "INVALID_ARGUMENT", "device.groups"),
            ("1,000 groups", j(admin, REGISTRY, "RegisterDevice", {"device": {"commId": "ok-8", "groups": [f"g{i}" for i in range(1000)]}}),
             "INVALID_ARGUMENT", "device.groups"),
            ("status unknown enum value", j(admin, REGISTRY, "RegisterDevice", {"device": {"commId": "ok-9", "status": 999}}),
             "INVALID_ARGUMENT", "device.status"),
            ("batch of 10,001", j(admin, REGISTRY, "BatchRegisterDevices", {"devices": [{"commId": f"b-{i}"} for i in range(10001)]}),
             "INVALID_ARGUMENT", "devices"),
            ("SetDeviceStatus unknown status", j(admin, REGISTRY, "SetDeviceStatus", {"commId": "target-1", "status": 77}),
             "INVALID_ARGUMENT", "status"),
            ("UpdateDevice unknown mask path", j(admin, REGISTRY, "UpdateDevice", {"device": {"commId": "target-1"}, "updateMask": "commId"}),
             "INVALID_ARGUMENT", "update_mask"),
            ("UpdateDevice SQL-like mask path", j(admin, REGISTRY, "UpdateDevice", {"device": {"commId": "target-1"}, "updateMask": "displayName,dropTableDevices"}),
             "INVALID_ARGUMENT", "update_mask"),
            ("GetDevice SQL", j(admin, REGISTRY, "GetDevice", {"commId": "' OR '1'='1"}),
             "INVALID_ARGUMENT", "comm_id"),
            ("GetDevice unknown", j(admin, REGISTRY, "GetDevice", {"commId": "nobody"}),
             "NOT_FOUND", "nobody"),
            # --- paging ---
            ("page_size negative", j(admin, REGISTRY, "ListDevices", {"pageSize": -1}),
             "INVALID_ARGUMENT", "page_size"),
            # Above the maximum is capped, as AIP-158 asks (not an error).
            ("page_size huge", j(admin, REGISTRY, "ListDevices", {"pageSize": 2147483647}),
             "OK", ""),
            ("page_token garbage", j(admin, REGISTRY, "ListDevices", {"pageToken": "%%%not-a-token"}),
             "INVALID_ARGUMENT", "page_token"),
            ("page_token 100 KB", j(admin, REGISTRY, "ListDevices", {"pageToken": "A" * 100000}),
             "INVALID_ARGUMENT", "page_token"),
            ("certificates page_size negative", j(admin, ISSUANCE, "ListCertificates", {"pageSize": -5}),
             "INVALID_ARGUMENT", "page_size"),
            ("audit page_size negative", j(admin, AUDIT, "ListAuditEvents", {"pageSize": -5}),
             "INVALID_ARGUMENT", "page_size"),
            # --- wire format abuse (raw) ---
            ("garbage bytes", r(REGISTRY, "RegisterDevice", b"\xff\xff\xff\xff\x0f garbage"),
             "INVALID_ARGUMENT", ""),
            ("truncated message", r(REGISTRY, "RegisterDevice", register_raw(b"target-x")[:-3]),
             "INVALID_ARGUMENT", ""),
            ("deeply nested groups", r(REGISTRY, "RegisterDevice", b"\x7b" * 100000 + b"\x7c" * 100000),
             "INVALID_ARGUMENT", ""),
            ("2,000 nested unknown fields (skipped, not parsed)", r(REGISTRY, "ListDevices", _nested(2000)),
             "OK", ""),
            ("40 MiB message", r(REGISTRY, "RegisterDevice", register_raw(b"big", b"x" * (40 << 20))),
             "RESOURCE_EXHAUSTED", ""),
            ("unknown fields only", r(REGISTRY, "GetDevice", field_varint(99, 1) + field_bytes(100, b"zz")),
             "INVALID_ARGUMENT", "comm_id"),
            # --- issuance ---
            ("sign without CSR", j(admin, ISSUANCE, "SignDeviceCsr", {"commId": "target-1", "requestId": "h-1"}),
             "INVALID_ARGUMENT", "csr_pem"),
            ("sign with garbage CSR", j(admin, ISSUANCE, "SignDeviceCsr", {"commId": "target-1", "requestId": "h-2", "csrPem": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"}),
             "INVALID_ARGUMENT", "csr_pem"),
            ("sign with 2 MB CSR", j(admin, ISSUANCE, "SignDeviceCsr", {"commId": "target-1", "requestId": "h-3", "csrPem": "A" * 2000000}),
             "INVALID_ARGUMENT", "csr_pem"),
            ("sign CN mismatch", j(admin, ISSUANCE, "SignDeviceCsr", {"commId": "target-2", "requestId": "h-4", "csrPem": csr}),
             "INVALID_ARGUMENT", "common name"),
            ("sign request_id 200 characters", j(admin, ISSUANCE, "SignDeviceCsr", {"commId": "target-1", "requestId": "r" * 200, "csrPem": csr}),
             "INVALID_ARGUMENT", "request_id"),
            ("sign negative validity", j(admin, ISSUANCE, "SignDeviceCsr", {"commId": "target-1", "requestId": "h-5", "csrPem": csr, "validity": "-3600s"}),
             "INVALID_ARGUMENT", "validity"),
            ("sign unregistered comm_id", j(admin, ISSUANCE, "SignDeviceCsr", {"commId": "ghost-1", "requestId": "h-6", "csrPem": ghost_csr}),
             "NOT_FOUND", "ghost-1"),
            ("sign with wildcard comm_id", j(admin, ISSUANCE, "SignDeviceCsr", {"commId": "+", "requestId": "h-7", "csrPem": csr}),
             "INVALID_ARGUMENT", "comm_id"),
            ("GetCertificate serial not hex", j(admin, ISSUANCE, "GetCertificate", {"serial": "zz-top"}),
             "INVALID_ARGUMENT", "serial"),
            ("GetCertificate serial 100 digits", j(admin, ISSUANCE, "GetCertificate", {"serial": "1" * 100}),
             "INVALID_ARGUMENT", "serial"),
            # --- revocation and CRLs ---
            ("revoke unknown reason", j(admin, REVOCATION, "RevokeCertificate", {"serial": cert["serial"], "reason": 999}),
             "INVALID_ARGUMENT", "reason"),
            ("revoke unknown serial", j(admin, REVOCATION, "RevokeCertificate", {"serial": "0badc0de", "reason": "REVOCATION_REASON_KEY_COMPROMISE"}),
             "NOT_FOUND", ""),
            ("revoke serial SQL", j(admin, REVOCATION, "RevokeCertificate", {"serial": "1' OR 1=1--", "reason": "REVOCATION_REASON_KEY_COMPROMISE"}),
             "INVALID_ARGUMENT", "serial"),
            ("GetCrl path traversal", j(admin, REVOCATION, "GetCrl", {"issuerId": "../../etc/passwd"}),
             "NOT_FOUND", ""),
            # --- customer PKIs (external CAs, their certificates and CRLs) ---
            ("external CA id SQL", j(admin, CA, "RegisterExternalCa", {"externalCaId": "x';DROP TABLE issuers;--", "certificatePem": cert["chainPem"]}),
             "INVALID_ARGUMENT", "external_ca_id"),
            ("external CA id with /", j(admin, CA, "RegisterExternalCa", {"externalCaId": "a/b", "certificatePem": cert["chainPem"]}),
             "INVALID_ARGUMENT", "external_ca_id"),
            ("external CA certificate 1 MB of junk", j(admin, CA, "RegisterExternalCa", {"externalCaId": "junk", "certificatePem": "-----BEGIN CERTIFICATE-----\n" + "A" * 1000000 + "\n-----END CERTIFICATE-----\n"}),
             "INVALID_ARGUMENT", "certificate_pem"),
            ("external CA: fleetca's own chain (two certificates)", j(admin, CA, "RegisterExternalCa", {"externalCaId": "own", "certificatePem": cert["chainPem"]}),
             "INVALID_ARGUMENT", "certificate_pem"),
            ("external CA: a device certificate", j(admin, CA, "RegisterExternalCa", {"externalCaId": "leaf", "certificatePem": cert["certificatePem"]}),
             "INVALID_ARGUMENT", "certificate_pem"),
            ("UpdateExternalCa unknown", j(admin, CA, "UpdateExternalCa", {"externalCa": {"externalCaId": "nobody", "enabled": False}, "updateMask": "enabled"}),
             "NOT_FOUND", "nobody"),
            ("register fleetca's own certificate as external", j(admin, ISSUANCE, "RegisterExternalCertificate", {"commId": "target-2", "certificatePem": cert["certificatePem"]}),
             "INVALID_ARGUMENT", "fleetca"),
            ("register external: chain junk", j(admin, ISSUANCE, "RegisterExternalCertificate", {"commId": "target-2", "certificatePem": cert["certificatePem"], "chainPem": "junk"}),
             "INVALID_ARGUMENT", "chain_pem"),
            ("ImportCrl unknown CA", j(admin, REVOCATION, "ImportCrl", {"externalCaId": "nobody", "crlDer": "MAA="}),
             "NOT_FOUND", "nobody"),
            ("ImportCrl no CRL", j(admin, REVOCATION, "ImportCrl", {"externalCaId": "nobody"}),
             "INVALID_ARGUMENT", "crl"),
            ("AuthorizeConnect chain junk", j(admin, BROKER_AUTH, "AuthorizeConnect", {"certificatePem": cert["certificatePem"], "chainPem": "junk", "clientId": "target-2"}),
             "INVALID_ARGUMENT", "chain_pem"),
            # --- ACL policy ---
            ("profile pattern with # inside", j(admin, ACL, "CreateAclProfile", {"profile": {"name": "bad-1", "rules": [{"topicPattern": "a/#/b", "access": "ACL_ACCESS_READ"}]}}),
             "INVALID_ARGUMENT", "topic_pattern"),
            ("profile pattern unterminated %{", j(admin, ACL, "CreateAclProfile", {"profile": {"name": "bad-2", "rules": [{"topicPattern": "sites/%{site/x", "access": "ACL_ACCESS_READ"}]}}),
             "INVALID_ARGUMENT", "topic_pattern"),
            ("profile pattern with NUL", j(admin, ACL, "CreateAclProfile", {"profile": {"name": "bad-3", "rules": [{"topicPattern": "a/\u0000", "access": "ACL_ACCESS_READ"}]}}),
             "INVALID_ARGUMENT", "topic_pattern"),
            ("profile name SQL", j(admin, ACL, "CreateAclProfile", {"profile": {"name": "p'; DROP TABLE acl_profiles;--", "rules": [{"topicPattern": "a/b", "access": "ACL_ACCESS_READ"}]}}),
             "INVALID_ARGUMENT", "profile.name"),
            ("profile 10,000 rules", j(admin, ACL, "CreateAclProfile", {"profile": {"name": "bad-4", "rules": [{"topicPattern": f"a/{i}", "access": "ACL_ACCESS_READ"} for i in range(10000)]}}),
             "INVALID_ARGUMENT", "rules"),
            ("assign unknown profile", j(admin, ACL, "AssignAclProfile", {"assignment": {"subjectType": "ACL_SUBJECT_TYPE_DEVICE", "subjectId": "target-1", "profileName": "nope"}}),
             "NOT_FOUND", "nope"),
            ("CheckTopic with wildcard topic", j(admin, BROKER_AUTH, "CheckTopic", {"principal": {"type": "PRINCIPAL_TYPE_DEVICE", "id": "target-1"}, "operation": "TOPIC_OPERATION_PUBLISH", "topic": "devices/+/up"}),
             "INVALID_ARGUMENT", "topic"),
            # --- brokers and identities ---
            ("broker id with /", j(admin, BROKERS, "RegisterBroker", {"broker": {"brokerId": "mqtt/1"}}),
             "INVALID_ARGUMENT", "broker.broker_id"),
            ("broker DNS name with empty label", j(admin, BROKERS, "RegisterBroker", {"broker": {"brokerId": "mqtt-2", "allowedDnsNames": ["bad..example.com"]}}),
             "INVALID_ARGUMENT", "allowed_dns_names"),
            ("broker bad IP", j(admin, BROKERS, "RegisterBroker", {"broker": {"brokerId": "mqtt-3", "allowedIpAddresses": ["999.1.1.1"]}}),
             "INVALID_ARGUMENT", "allowed_ip_addresses"),
            ("identity role unspecified", j(admin, IDENTITY, "IssueIdentity", {"name": "x-1", "generateKeyAlgorithm": "KEY_ALGORITHM_ECDSA_P256"}),
             "INVALID_ARGUMENT", "role"),
            ("identity name with /", j(admin, IDENTITY, "IssueIdentity", {"name": "a/b", "role": "IDENTITY_ROLE_VIEWER", "generateKeyAlgorithm": "KEY_ALGORITHM_ECDSA_P256"}),
             "INVALID_ARGUMENT", "name"),
            # --- wrong roles and no credentials ---
            ("viewer registers", j(viewer, REGISTRY, "RegisterDevice", {"device": {"commId": "v-1"}}),
             "PERMISSION_DENIED", "viewer"),
            ("viewer issues an identity", j(viewer, IDENTITY, "IssueIdentity", {"name": "v-2", "role": "IDENTITY_ROLE_ADMIN", "generateKeyAlgorithm": "KEY_ALGORITHM_ECDSA_P256"}),
             "PERMISSION_DENIED", "viewer"),
            ("provisioner revokes", j(provisioner, REVOCATION, "RevokeCertificate", {"serial": cert["serial"], "reason": "REVOCATION_REASON_KEY_COMPROMISE"}),
             "PERMISSION_DENIED", "provisioner"),
            ("provisioner makes a profile", j(provisioner, ACL, "CreateAclProfile", {"profile": {"name": "p-1", "rules": [{"topicPattern": "#", "access": "ACL_ACCESS_WRITE"}]}}),
             "PERMISSION_DENIED", "provisioner"),
            ("device lists devices", j(device, REGISTRY, "ListDevices", {}),
             "PERMISSION_DENIED", "device"),
            ("device renews another device", j(device, ISSUANCE, "RenewDeviceCertificate", {"commId": "target-2", "csrPem": csr}),
             "PERMISSION_DENIED", "only for itself"),
            ("no client certificate", lambda: anonymous.call("RegisterDevice", {"device": {"commId": "anon-1"}},
                                                              service=REGISTRY, schema=PROTO_DIR),
             "UNAUTHENTICATED", "client certificate"),
        ]
        self.assertGreaterEqual(len(cases), 50)
        failures = []
        for what, call, code, needle in cases:
            got = call()
            got_code, message = (got.code, got.message) if hasattr(got, "code") else got
            if got_code != code or needle.lower() not in message.lower():
                failures.append(f"{what}: expected {code} naming {needle!r}, got {got_code}: {message[:300]}")
        self.assertEqual(failures, [], "\n" + "\n".join(failures))
        time.sleep(1.5)
        self.assertEqual(self.state(db), before, "a refused request changed the database")
        # The server is still up and answers.
        self.ok(admin.call("GetDevice", {"commId": "target-1"}))


def _nested(depth):
    """ListDevicesRequest bytes whose unknown field 15 nests `depth` length-delimited
    messages (unknown fields are skipped, never recursed into, by a parser that is safe)."""
    inner = b""
    for _ in range(depth):
        inner = field_bytes(15, inner)
    return field_varint(1, 10) + inner
