// fleetca broker ...: BrokerSyncService (brokers and the Watch stream) and BrokerAuthService
// (the authorization queries a broker makes, handy for debugging a refusal).

#include <google/protobuf/util/json_util.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/cli.h"
#include "cli/output.h"
#include "fleetca/v1/broker_auth.grpc.pb.h"
#include "fleetca/v1/broker_sync.grpc.pb.h"

namespace fleetca::cli {

namespace {

using Sync = v1::BrokerSyncService;
using Auth = v1::BrokerAuthService;

const std::vector<Column> kBrokerColumns = {
    {"BROKER", "broker_id"},        {"DISPLAY-NAME", "display_name"},
    {"DNS", "allowed_dns_names"},   {"IPS", "allowed_ip_addresses"},
    {"WATCHING", "sync.watching"},  {"SENT", "sync.sent_revision"},
    {"HEAD", "sync.head_revision"}, {"LAST-SEEN", "sync.last_seen_time"},
};

struct BrokerArgs {
  std::string id, display_name, etag;
  std::vector<std::string> dns, ips;
  bool display_name_set = false;
  bool clear_dns = false, clear_ips = false;
};

// One line per stream message, for people.
std::string WatchLine(const v1::WatchResponse& m) {
  switch (m.event_case()) {
    case v1::WatchResponse::kSnapshotBegin:
      return absl::StrCat("snapshot-begin revision=", m.snapshot_begin().revision(),
                          " reason=", FieldText(m.snapshot_begin(), "reason"));
    case v1::WatchResponse::kSnapshotEnd:
      return absl::StrCat("snapshot-end revision=", m.snapshot_end().revision(),
                          " objects=", m.snapshot_end().object_count());
    case v1::WatchResponse::kHeartbeat:
      return absl::StrCat("heartbeat revision=", m.heartbeat().revision(),
                          " head=", m.heartbeat().head_revision());
    case v1::WatchResponse::kChanges: {
      std::string out = absl::StrCat("changes revision=", m.changes().revision(),
                                     m.changes().continued() ? " (continued)" : "");
      for (const v1::SyncChange& c : m.changes().changes()) {
        std::string what;
        switch (c.object_case()) {
          case v1::SyncChange::kIssuer:
            what = "issuer " + c.issuer().issuer_id();
            break;
          case v1::SyncChange::kCrl:
            what = absl::StrCat("crl ", c.crl().issuer_id(), " #", c.crl().crl_number());
            break;
          case v1::SyncChange::kDevice:
            what =
                absl::StrCat("device ", c.device().comm_id(), " ", FieldText(c.device(), "status"));
            break;
          case v1::SyncChange::kIdentity:
            what = absl::StrCat("identity ", c.identity().name(), " ",
                                FieldText(c.identity(), "status"));
            break;
          case v1::SyncChange::kCertificate:
            what = absl::StrCat("certificate ", c.certificate().serial(), " ",
                                FieldText(c.certificate(), "status"));
            break;
          case v1::SyncChange::kAclProfile:
            what = "acl-profile " + c.acl_profile().name();
            break;
          case v1::SyncChange::kAclAssignment:
            what = absl::StrCat("acl-assignment ", c.acl_assignment().profile_name(), " -> ",
                                FieldText(c.acl_assignment(), "subject_type"), "/",
                                c.acl_assignment().subject_id());
            break;
          case v1::SyncChange::OBJECT_NOT_SET:
            what = "?";
            break;
        }
        absl::StrAppend(&out, "\n  ", c.revision(), c.deleted() ? " delete " : " upsert ", what);
      }
      return out;
    }
    case v1::WatchResponse::EVENT_NOT_SET:
      break;
  }
  return "?";
}

}  // namespace

void AddBrokerCommands(CLI::App& app, Cli& cli) {
  CLI::App* noun = Noun(&app, "broker",
                        "MQTT brokers, their sync stream and authorization queries "
                        "(BrokerSyncService, BrokerAuthService)");

  {  // register
    auto o = std::make_shared<BrokerArgs>();
    CLI::App* c = Leaf(noun, cli, "register", "register a broker (RegisterBroker)", [&cli, o] {
      auto stub = Sync::NewStub(cli.Channel());
      v1::RegisterBrokerRequest req;
      v1::Broker* b = req.mutable_broker();
      b->set_broker_id(o->id);
      b->set_display_name(o->display_name);
      for (const auto& d : o->dns) b->add_allowed_dns_names(d);
      for (const auto& ip : o->ips) b->add_allowed_ip_addresses(ip);
      Show(cli, cli.Call(stub.get(), &Sync::Stub::RegisterBroker, req).broker());
    });
    c->add_option("broker_id", o->id, "broker id")->required();
    c->add_option("--display-name", o->display_name, "label");
    c->add_option("--dns", o->dns, "DNS name its certificates may carry (repeat)");
    c->add_option("--ip", o->ips, "IP address its certificates may carry (repeat)");
  }
  {  // get
    auto id = std::make_shared<std::string>();
    CLI::App* c =
        Leaf(noun, cli, "get", "show a broker and its sync state (GetBroker)", [&cli, id] {
          auto stub = Sync::NewStub(cli.Channel());
          v1::GetBrokerRequest req;
          req.set_broker_id(*id);
          Show(cli, cli.Call(stub.get(), &Sync::Stub::GetBroker, req).broker());
        });
    c->add_option("broker_id", *id, "broker id")->required();
  }
  {  // list
    auto limit = std::make_shared<int64_t>(500);
    CLI::App* c = Leaf(noun, cli, "list", "list brokers (ListBrokers)", [&cli, limit] {
      auto stub = Sync::NewStub(cli.Channel());
      auto all = cli.List(stub.get(), &Sync::Stub::ListBrokers, v1::ListBrokersRequest(), *limit,
                          "brokers");
      ShowList(cli, all, "brokers", kBrokerColumns);
    });
    AddLimit(c, limit.get());
  }
  {  // update
    auto o = std::make_shared<BrokerArgs>();
    CLI::App* c = Leaf(noun, cli, "update", "change a broker (UpdateBroker; only the fields given)",
                       [&cli, o] {
                         auto stub = Sync::NewStub(cli.Channel());
                         v1::UpdateBrokerRequest req;
                         v1::Broker* b = req.mutable_broker();
                         b->set_broker_id(o->id);
                         req.set_etag(o->etag);
                         if (o->display_name_set) {
                           b->set_display_name(o->display_name);
                           req.mutable_update_mask()->add_paths("display_name");
                         }
                         if (!o->dns.empty() || o->clear_dns) {
                           for (const auto& d : o->dns) b->add_allowed_dns_names(d);
                           req.mutable_update_mask()->add_paths("allowed_dns_names");
                         }
                         if (!o->ips.empty() || o->clear_ips) {
                           for (const auto& ip : o->ips) b->add_allowed_ip_addresses(ip);
                           req.mutable_update_mask()->add_paths("allowed_ip_addresses");
                         }
                         if (req.update_mask().paths_size() == 0) {
                           throw UsageError(
                               "nothing to update: give --display-name, --dns, --ip, "
                               "--clear-dns or --clear-ips");
                         }
                         Show(cli, cli.Call(stub.get(), &Sync::Stub::UpdateBroker, req).broker());
                       });
    c->add_option("broker_id", o->id, "broker id")->required();
    c->add_option("--display-name", o->display_name, "label")->each([o](const std::string&) {
      o->display_name_set = true;
    });
    c->add_option("--dns", o->dns, "the allowed DNS names (replace all; repeat)");
    c->add_option("--ip", o->ips, "the allowed IP addresses (replace all; repeat)");
    c->add_flag("--clear-dns", o->clear_dns, "no DNS name allowed");
    c->add_flag("--clear-ips", o->clear_ips, "no IP address allowed");
    c->add_option("--etag", o->etag, "only if unchanged since this etag (else ABORTED)");
  }
  {  // delete
    auto o = std::make_shared<BrokerArgs>();
    CLI::App* c = Leaf(noun, cli, "delete", "remove a broker (DeleteBroker)", [&cli, o] {
      auto stub = Sync::NewStub(cli.Channel());
      v1::DeleteBrokerRequest req;
      req.set_broker_id(o->id);
      req.set_etag(o->etag);
      cli.Call(stub.get(), &Sync::Stub::DeleteBroker, req);
      std::cout << (cli.Format() == OutputFormat::kJson ? std::string("{}\n")
                                                        : "deleted broker " + o->id + "\n");
    });
    c->add_option("broker_id", o->id, "broker id")->required();
    c->add_option("--etag", o->etag, "only if unchanged since this etag (else ABORTED)");
  }
  {  // watch
    struct Opts {
      std::string id, heartbeat = "10s";
      int64_t since = 0;
      std::vector<std::string> types;
      int64_t max_messages = 0;
      bool until_snapshot_end = false;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* c = Leaf(noun, cli, "watch",
                       "follow the sync stream as a broker would (Watch): one line per message, "
                       "or one JSON object per line with -o json",
                       [&cli, o] {
                         auto stub = Sync::NewStub(cli.Channel());
                         v1::WatchRequest req;
                         req.set_broker_id(o->id);
                         req.set_since_revision(o->since);
                         *req.mutable_heartbeat_interval() =
                             ParseDuration(o->heartbeat, "--heartbeat");
                         for (const auto& t : o->types) {
                           req.add_object_types(static_cast<v1::SyncObjectType>(
                               ParseEnum(v1::SyncObjectType_descriptor(), t, "--type")));
                         }
                         const bool json = cli.Format() == OutputFormat::kJson;
                         if (!json && cli.Format() != OutputFormat::kTable) {
                           throw UsageError("-o: watch prints table lines or json");
                         }
                         auto context = cli.NewContext(/*deadline=*/false);
                         auto reader = stub->Watch(context.get(), req);
                         v1::WatchResponse m;
                         int64_t n = 0;
                         google::protobuf::util::JsonPrintOptions options;
                         while (reader->Read(&m)) {
                           if (json) {
                             std::string line;
                             (void)google::protobuf::util::MessageToJsonString(m, &line, options);
                             std::cout << line << "\n";
                           } else {
                             std::cout << WatchLine(m) << "\n";
                           }
                           std::cout.flush();
                           ++n;
                           if ((o->max_messages > 0 && n >= o->max_messages) ||
                               (o->until_snapshot_end && m.has_snapshot_end())) {
                             context->TryCancel();
                             reader->Finish();
                             return;
                           }
                         }
                         Cli::Check(reader->Finish());
                       });
    c->add_option("broker_id", o->id, "the broker watching")->required();
    c->add_option("--since", o->since, "resume after this revision (0: a snapshot first)");
    c->add_option("--heartbeat", o->heartbeat, "heartbeat interval (1s to 60s)")
        ->capture_default_str();
    c->add_option(
        "--type", o->types,
        "only these object types (repeat): " + EnumChoices(v1::SyncObjectType_descriptor()));
    c->add_option("--max-messages", o->max_messages, "stop after this many messages");
    c->add_flag("--until-snapshot-end", o->until_snapshot_end,
                "stop once the snapshot is complete");
  }
  {  // authorize
    struct Opts {
      std::string certificate, fingerprint, serial, chain, issuer, client_id, username;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* c = Leaf(
        noun, cli, "authorize", "ask whether an MQTT CONNECT would be allowed (AuthorizeConnect)",
        [&cli, o] {
          const int given = !o->certificate.empty() + !o->fingerprint.empty() + !o->serial.empty();
          if (given != 1) {
            throw UsageError("give one of --certificate FILE, --fingerprint, --serial");
          }
          auto stub = Auth::NewStub(cli.Channel());
          v1::AuthorizeConnectRequest req;
          if (!o->certificate.empty()) {
            const std::string cert = ReadInputFile(o->certificate);
            if (absl::StrContains(cert, "-----BEGIN ")) {
              req.set_certificate_pem(cert);
            } else {
              req.set_certificate_der(cert);
            }
          }
          if (!o->fingerprint.empty()) req.set_sha256_fingerprint(o->fingerprint);
          if (!o->serial.empty()) req.set_serial(o->serial);
          if (!o->chain.empty()) req.set_chain_pem(ReadInputFile(o->chain));
          req.set_issuer_id(o->issuer);
          req.set_client_id(o->client_id);
          req.set_username(o->username);
          auto resp = cli.Call(stub.get(), &Auth::Stub::AuthorizeConnect, req);
          if (cli.Format() != OutputFormat::kTable) {
            Show(cli, resp);
            return;
          }
          v1::AuthorizeConnectResponse head = resp;
          head.clear_rules();
          std::cout << Describe(head);
          if (resp.rules_size() > 0) {
            Table t({"ACCESS", "TOPIC-FILTER", "PROFILE"});
            for (const auto& r : resp.rules()) {
              t.AddRow({FieldText(r, "access"), r.topic_filter(), r.profile_name()});
            }
            std::cout << "rules:\n" << t.Render();
          }
        });
    c->add_option("--certificate", o->certificate, "the client's certificate (PEM or DER file)");
    c->add_option("--fingerprint", o->fingerprint, "or its SHA-256 fingerprint");
    c->add_option("--serial", o->serial, "or its serial");
    c->add_option("--chain", o->chain, "the chain the client sent (PEM)");
    c->add_option("--issuer", o->issuer, "issuer id (with --serial)");
    c->add_option("--client-id", o->client_id, "the MQTT client id")->required();
    c->add_option("--username", o->username, "the MQTT username the client sent");
  }
  {  // check-topic
    struct Opts {
      std::string device, identity, topic, operation;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* c =
        Leaf(noun, cli, "check-topic",
             "ask whether a principal may publish/subscribe/receive on a topic "
             "(CheckTopic)",
             [&cli, o] {
               if (o->device.empty() == o->identity.empty()) {
                 throw UsageError("give --device COMM_ID or --identity NAME");
               }
               auto stub = Auth::NewStub(cli.Channel());
               v1::CheckTopicRequest req;
               req.mutable_principal()->set_type(o->device.empty() ? v1::PRINCIPAL_TYPE_IDENTITY
                                                                   : v1::PRINCIPAL_TYPE_DEVICE);
               req.mutable_principal()->set_id(o->device.empty() ? o->identity : o->device);
               req.set_topic(o->topic);
               req.set_operation(static_cast<v1::TopicOperation>(
                   ParseEnum(v1::TopicOperation_descriptor(), o->operation, "--operation")));
               Show(cli, cli.Call(stub.get(), &Auth::Stub::CheckTopic, req));
             });
    c->add_option("--device", o->device, "a device (comm-ID)");
    c->add_option("--identity", o->identity, "an identity (name)");
    c->add_option("--topic", o->topic, "topic (or filter, for subscribe)")->required();
    c->add_option("--operation", o->operation, EnumChoices(v1::TopicOperation_descriptor()))
        ->required();
  }
}

}  // namespace fleetca::cli
