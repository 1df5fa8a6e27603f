"""The issue's "Done when", through a reflection client: register 3 devices and a batch of
1,000, list them page by page, suspend one, restart the server: the data is still there."""

import unittest

from fleetca_e2e import E2ETestCase, log

SINGLES = ["356938035643809", "SN-0001", "gw:lyon.01"]
BATCH = [f"batch-{i:05d}" for i in range(1000)]


class RegistryFlowTest(E2ETestCase):

    def list_all(self, client, page_size, **filters):
        """Follows next_page_token to the end; returns (comm-IDs, page sizes)."""
        ids, pages, token = [], [], ""
        while True:
            body = self.ok(client.call("ListDevices", {"pageSize": page_size, "pageToken": token,
                                                       **filters}), f"ListDevices page {len(pages)}")
            devices = body.get("devices", [])
            pages.append(len(devices))
            ids += [d["commId"] for d in devices]
            token = body.get("nextPageToken", "")
            if not token:
                return ids, pages
            self.assertLess(len(pages), 100, "pagination does not end")

    def test_register_batch_list_suspend_restart(self):
        db = self.new_database("flow")
        server = self.start_server(db.url, name="first")
        client = server.wait_ready()

        for comm_id in SINGLES:
            dev = self.ok(client.call("RegisterDevice", {"device": {
                "commId": comm_id, "displayName": f"device {comm_id}",
                "attributes": {"site": "lyon"}, "groups": ["line-1"]}}),
                f"RegisterDevice {comm_id}")["device"]
            self.assertEqual(dev["commId"], comm_id)
            self.assertEqual(dev["status"], "DEVICE_STATUS_ACTIVE")
            self.assertEqual(dev["attributes"], {"site": "lyon"})
            self.assertEqual(dev["groups"], ["line-1"])
            self.assertTrue(dev["etag"])
            self.assertTrue(dev["createTime"])

        batch = self.ok(client.call("BatchRegisterDevices", {"devices": [
            {"commId": c, "attributes": {"lot": str(i // 100)}} for i, c in enumerate(BATCH)]}),
            "BatchRegisterDevices")
        self.assertEqual(batch["registeredCount"], 1000)
        self.assertEqual(batch["failedCount"], 0)
        self.assertEqual(len(batch["results"]), 1000)
        for i, r in enumerate(batch["results"]):
            self.assertEqual((r["index"], r["commId"], r["code"]), (i, BATCH[i], 0), r)

        expected = sorted(SINGLES + BATCH)  # ASCII: byte order, as the server sorts
        ids, pages = self.list_all(client, 300)
        self.assertEqual(pages, [300, 300, 300, 103])
        self.assertEqual(ids, expected)

        ids, _ = self.list_all(client, 1000, commIdPrefix="batch-")
        self.assertEqual(ids, BATCH)
        ids, _ = self.list_all(client, 50, attributeFilter={"lot": "7"})
        self.assertEqual(ids, BATCH[700:800])

        before = self.ok(client.call("GetDevice", {"commId": "SN-0001"}))["device"]
        suspended = self.ok(client.call("SetDeviceStatus", {
            "commId": "SN-0001", "status": "DEVICE_STATUS_SUSPENDED",
            "reason": "lost in transit", "etag": before["etag"]}), "SetDeviceStatus")["device"]
        self.assertEqual(suspended["status"], "DEVICE_STATUS_SUSPENDED")
        self.assertEqual(suspended["statusReason"], "lost in transit")
        self.assertNotEqual(suspended["etag"], before["etag"])

        self.assertEqual(server.stop(), 0, server.describe())
        self.assertIn("stopped", server.messages())

        log("restarting the server on the same database")
        again = self.start_server(db.url, name="second")
        client = again.wait_ready()
        schema = [l for l in again.log_lines() if l.get("msg") == "schema up to date"]
        self.assertEqual([l.get("applied_now") for l in schema], ["0"], again.describe())

        dev = self.ok(client.call("GetDevice", {"commId": "SN-0001"}))["device"]
        self.assertEqual(dev["status"], "DEVICE_STATUS_SUSPENDED")
        self.assertEqual(dev["statusReason"], "lost in transit")
        self.assertEqual(dev["etag"], suspended["etag"])
        self.assertEqual(dev["displayName"], "device SN-0001")
        ids, pages = self.list_all(client, 300)
        self.assertEqual(ids, expected)
        ids, _ = self.list_all(client, 100, status="DEVICE_STATUS_SUSPENDED")
        self.assertEqual(ids, ["SN-0001"])
        ids, _ = self.list_all(client, 1000, status="DEVICE_STATUS_ACTIVE")
        self.assertEqual(len(ids), 1002)
        self.assertEqual(again.stop(), 0, again.describe())


if __name__ == "__main__":
    unittest.main()
