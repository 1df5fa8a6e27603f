// StreamApplier against the Watch contract (proto/fleetca/v1/broker_sync.proto): snapshots
// swapped in whole, counts checked, deltas, `continued` runs and resume revisions.
#include "sync_agent/state.h"

#include <gtest/gtest.h>

#include "tests/sync_agent/sync_test_util.h"

namespace fleetca::sync_agent {
namespace {

using namespace ::fleetca::sync_agent::testing;  // NOLINT: message builders
using Outcome = StreamApplier::Outcome;

// Applies messages that must all succeed and returns the last outcome.
Outcome ApplyAll(StreamApplier& applier, const std::vector<v1::WatchResponse>& messages) {
  Outcome last = Outcome::kNothing;
  for (const v1::WatchResponse& m : messages) {
    auto outcome = applier.Apply(m);
    EXPECT_TRUE(outcome.ok()) << outcome.status();
    if (outcome.ok()) last = *outcome;
  }
  return last;
}

std::vector<v1::SyncChange> SmallPolicy() {
  return {Change(Device("dev-1")), Change(Device("dev-2", v1::DEVICE_STATUS_SUSPENDED)),
          Change(Identity("watcher")),
          Change(Profile("device", {{"devices/%c/#", v1::ACL_ACCESS_READWRITE}})),
          Change(Assignment(v1::ACL_SUBJECT_TYPE_ALL_DEVICES, "", "device"))};
}

TEST(StreamApplierTest, SnapshotIsSwappedInWholeAtItsEnd) {
  StreamApplier applier;
  std::vector<v1::WatchResponse> messages = Snapshot(10, SmallPolicy(), 2);
  // Every message but the last leaves the state empty and the resume point at 0.
  for (size_t i = 0; i + 1 < messages.size(); ++i) {
    auto outcome = applier.Apply(messages[i]);
    ASSERT_TRUE(outcome.ok()) << outcome.status();
    EXPECT_EQ(*outcome, Outcome::kNothing);
    EXPECT_FALSE(applier.has_state());
    EXPECT_EQ(applier.state().ObjectCount(), 0u);
    EXPECT_EQ(applier.resume_revision(), 0);
    EXPECT_TRUE(applier.in_snapshot());
  }
  auto outcome = applier.Apply(messages.back());
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_EQ(*outcome, Outcome::kSnapshotSwapped);
  EXPECT_TRUE(applier.has_state());
  EXPECT_FALSE(applier.in_snapshot());
  EXPECT_EQ(applier.resume_revision(), 10);
  EXPECT_EQ(applier.state().devices.size(), 2u);
  EXPECT_EQ(applier.state().identities.size(), 1u);
  EXPECT_EQ(applier.state().acl_profiles.size(), 1u);
  EXPECT_EQ(applier.state().acl_assignments.size(), 1u);
}

TEST(StreamApplierTest, NewSnapshotReplacesTheStateRatherThanMerging) {
  StreamApplier applier;
  ApplyAll(applier, Snapshot(10, SmallPolicy()));
  EXPECT_EQ(ApplyAll(applier, Snapshot(20, {Change(Device("dev-9"))})), Outcome::kSnapshotSwapped);
  EXPECT_EQ(applier.state().ObjectCount(), 1u);
  EXPECT_EQ(applier.state().devices.count("dev-9"), 1u);
  EXPECT_EQ(applier.resume_revision(), 20);
}

TEST(StreamApplierTest, ObjectCountMismatchDiscardsTheSnapshot) {
  StreamApplier applier;
  ApplyAll(applier, Snapshot(10, SmallPolicy()));
  ApplyAll(applier, {SnapshotBegin(30), Changes(30, {Change(Device("dev-9"))})});
  auto outcome = applier.Apply(SnapshotEnd(30, 2));  // one object arrived, two announced
  ASSERT_FALSE(outcome.ok());
  EXPECT_EQ(outcome.status().code(), absl::StatusCode::kDataLoss) << outcome.status();
  // The previous state and resume point are kept.
  EXPECT_EQ(applier.resume_revision(), 10);
  EXPECT_EQ(applier.state().devices.count("dev-9"), 0u);
  EXPECT_EQ(applier.state().devices.size(), 2u);
  EXPECT_FALSE(applier.in_snapshot());
}

TEST(StreamApplierTest, StreamBrokenMidSnapshotKeepsThePreviousState) {
  StreamApplier applier;
  ApplyAll(applier, Snapshot(10, SmallPolicy()));
  ApplyAll(applier, {SnapshotBegin(40), Changes(40, {Change(Device("dev-9"))})});
  applier.StreamEnded();
  EXPECT_FALSE(applier.in_snapshot());
  EXPECT_EQ(applier.resume_revision(), 10);
  EXPECT_EQ(applier.state().devices.size(), 2u);
  // The next stream cannot finish the abandoned snapshot.
  auto outcome = applier.Apply(SnapshotEnd(40, 1));
  EXPECT_EQ(outcome.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(applier.state().devices.count("dev-9"), 0u);
}

TEST(StreamApplierTest, SnapshotEndWithAnotherRevisionIsRefused) {
  StreamApplier applier;
  ApplyAll(applier, {SnapshotBegin(5), Changes(5, {Change(Device("a"))})});
  EXPECT_EQ(applier.Apply(SnapshotEnd(6, 1)).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(applier.has_state());
}

TEST(StreamApplierTest, SnapshotBeginRestartsASnapshotInProgress) {
  StreamApplier applier;
  ApplyAll(applier, {SnapshotBegin(5), Changes(5, {Change(Device("a"))}), SnapshotBegin(6),
                     Changes(6, {Change(Device("b"))})});
  EXPECT_EQ(ApplyAll(applier, {SnapshotEnd(6, 1)}), Outcome::kSnapshotSwapped);
  EXPECT_EQ(applier.state().devices.count("a"), 0u);
  EXPECT_EQ(applier.state().devices.count("b"), 1u);
}

TEST(StreamApplierTest, DeltasUpsertAndDeleteEveryKindByItsKey) {
  StreamApplier applier;
  ApplyAll(applier, Snapshot(10, SmallPolicy()));

  v1::SyncCertificate cert;
  cert.set_issuer_id("devices");
  cert.set_serial("0a");
  cert.set_status(v1::CERTIFICATE_STATUS_ACTIVE);
  EXPECT_EQ(
      ApplyAll(applier,
               {Changes(11, {Change(Device("dev-1", v1::DEVICE_STATUS_SUSPENDED)),
                             Change(Issuer("devices", v1::ISSUER_PURPOSE_DEVICES, "pem")),
                             Change(Crl("devices", "der")), Change(cert),
                             Change(Identity("watcher", v1::IDENTITY_STATUS_REVOKED)),
                             Change(Assignment(v1::ACL_SUBJECT_TYPE_GROUP, "g", "device"))})}),
      Outcome::kChanged);
  const PolicyState& s = applier.state();
  EXPECT_EQ(s.devices.at("dev-1").status(), v1::DEVICE_STATUS_SUSPENDED);
  EXPECT_EQ(s.identities.at("watcher").status(), v1::IDENTITY_STATUS_REVOKED);
  EXPECT_EQ(s.issuers.count("devices"), 1u);
  EXPECT_EQ(s.crls.count("devices"), 1u);
  EXPECT_EQ(s.certificates.count({"devices", "0a"}), 1u);
  EXPECT_EQ(s.acl_assignments.size(), 2u);
  EXPECT_EQ(applier.resume_revision(), 11);

  // Deletions carry only the keys.
  v1::SyncCertificate cert_key;
  cert_key.set_issuer_id("devices");
  cert_key.set_serial("0a");
  v1::SyncDevice device_key;
  device_key.set_comm_id("dev-2");
  EXPECT_EQ(
      ApplyAll(
          applier,
          {Changes(12, {Change(device_key, true), Change(cert_key, true),
                        Change(Assignment(v1::ACL_SUBJECT_TYPE_ALL_DEVICES, "", "device"), true),
                        Change(Profile("device", {}), true)})}),
      Outcome::kChanged);
  EXPECT_EQ(s.devices.count("dev-2"), 0u);
  EXPECT_EQ(s.devices.count("dev-1"), 1u);
  EXPECT_EQ(s.certificates.size(), 0u);
  EXPECT_EQ(s.acl_profiles.size(), 0u);
  ASSERT_EQ(s.acl_assignments.size(), 1u);
  EXPECT_EQ(s.acl_assignments.begin()->second.subject_type(), v1::ACL_SUBJECT_TYPE_GROUP);
  EXPECT_EQ(applier.resume_revision(), 12);
}

TEST(StreamApplierTest, ContinuedChangesAreAppliedTogetherWithTheRunsLastMessage) {
  StreamApplier applier;
  ApplyAll(applier, Snapshot(10, SmallPolicy()));
  EXPECT_EQ(ApplyAll(applier, {Changes(11, {Change(Device("dev-3"))}, /*continued=*/true)}),
            Outcome::kNothing);
  EXPECT_EQ(applier.state().devices.count("dev-3"), 0u);  // held back
  EXPECT_EQ(applier.resume_revision(), 10);               // not a resume point yet
  EXPECT_EQ(ApplyAll(applier, {Changes(11, {Change(Device("dev-4"))}, true)}), Outcome::kNothing);
  // A heartbeat in the middle of the run is not a resume point either.
  EXPECT_EQ(ApplyAll(applier, {Heartbeat(11)}), Outcome::kNothing);
  EXPECT_EQ(applier.resume_revision(), 10);
  EXPECT_EQ(ApplyAll(applier, {Changes(11, {Change(Device("dev-5"))}, false)}), Outcome::kChanged);
  EXPECT_EQ(applier.state().devices.count("dev-3"), 1u);
  EXPECT_EQ(applier.state().devices.count("dev-4"), 1u);
  EXPECT_EQ(applier.state().devices.count("dev-5"), 1u);
  EXPECT_EQ(applier.resume_revision(), 11);
}

TEST(StreamApplierTest, UnfinishedContinuedRunIsDroppedWhenTheStreamBreaks) {
  StreamApplier applier;
  ApplyAll(applier, Snapshot(10, SmallPolicy()));
  ApplyAll(applier, {Changes(11, {Change(Device("dev-3"))}, true)});
  applier.StreamEnded();
  // The next stream resends revision 11 whole (since_revision is still 10).
  EXPECT_EQ(applier.resume_revision(), 10);
  ApplyAll(applier, {Changes(11, {Change(Device("dev-4"))}, false)});
  EXPECT_EQ(applier.state().devices.count("dev-3"), 0u);
  EXPECT_EQ(applier.state().devices.count("dev-4"), 1u);
}

TEST(StreamApplierTest, HeartbeatRevisionIsTheResumePointOnlyWithAFullState) {
  StreamApplier applier;
  ApplyAll(applier, {Heartbeat(7)});  // before any snapshot
  EXPECT_EQ(applier.resume_revision(), 0);
  ApplyAll(applier, {SnapshotBegin(10), Heartbeat(9)});  // inside a snapshot
  EXPECT_EQ(applier.resume_revision(), 0);
  ApplyAll(applier, {Changes(10, SmallPolicy()), SnapshotEnd(10, 5)});
  EXPECT_EQ(applier.resume_revision(), 10);
  // Changes of other object kinds move the server on without sending us anything.
  EXPECT_EQ(ApplyAll(applier, {Heartbeat(25)}), Outcome::kNothing);
  EXPECT_EQ(applier.resume_revision(), 25);
}

TEST(StreamApplierTest, ChangesBeforeAnySnapshotAreAProtocolError) {
  StreamApplier applier;
  auto outcome = applier.Apply(Changes(3, {Change(Device("a"))}));
  EXPECT_EQ(outcome.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(applier.has_state());
}

TEST(StreamApplierTest, MessageWithAnInvalidChangeIsRefusedWhole) {
  StreamApplier applier;
  ApplyAll(applier, Snapshot(10, SmallPolicy()));
  v1::SyncDevice no_key;
  auto outcome = applier.Apply(Changes(11, {Change(Device("dev-7")), Change(no_key)}));
  EXPECT_EQ(outcome.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(applier.state().devices.count("dev-7"), 0u);
  EXPECT_EQ(applier.resume_revision(), 10);
  EXPECT_EQ(applier.Apply(v1::WatchResponse()).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(StreamApplierTest, ChangeOfAnUnknownKindIsSkippedAndCounted) {
  StreamApplier applier;
  // A snapshot holding one object of a kind this build does not know still adds up.
  std::vector<v1::SyncChange> changes = SmallPolicy();
  changes.push_back(v1::SyncChange());
  EXPECT_EQ(ApplyAll(applier, Snapshot(10, changes)), Outcome::kSnapshotSwapped);
  EXPECT_EQ(applier.state().ObjectCount(), 5u);
  EXPECT_EQ(ApplyAll(applier, {Changes(11, {v1::SyncChange()})}), Outcome::kNothing);
  EXPECT_EQ(applier.resume_revision(), 11);
}

TEST(StreamApplierTest, AssignmentsAreKeyedByTypeSubjectAndProfile) {
  StreamApplier applier;
  ApplyAll(applier, Snapshot(1, {Change(Assignment(v1::ACL_SUBJECT_TYPE_DEVICE, "x", "p")),
                                 Change(Assignment(v1::ACL_SUBJECT_TYPE_IDENTITY, "x", "p")),
                                 Change(Assignment(v1::ACL_SUBJECT_TYPE_DEVICE, "x", "q")),
                                 Change(Assignment(v1::ACL_SUBJECT_TYPE_DEVICE, "x", "p"))}));
  EXPECT_EQ(applier.state().acl_assignments.size(), 3u);
}

}  // namespace
}  // namespace fleetca::sync_agent
