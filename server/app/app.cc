#include "server/app/app.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/logging.h"
#include "fleetca/v1/acl.grpc.pb.h"
#include "fleetca/v1/audit.grpc.pb.h"
#include "fleetca/v1/broker_auth.grpc.pb.h"
#include "fleetca/v1/identity.grpc.pb.h"
#include "fleetca/v1/revocation.grpc.pb.h"
#include "grpc/health/v1/health.pb.h"
#include "migrations/embedded_migrations.h"
#include "pki/kek.h"
#include "server/api/broker_sync_service.h"
#include "server/api/certificate_authority_service.h"
#include "server/api/device_registry_service.h"
#include "server/api/issuance_service.h"
#include "server/brokers/broker_registry.h"
#include "server/ca/certificate_authority.h"
#include "server/issuance/issuance.h"
#include "server/app/config.h"
#include "server/registry/registry.h"
#include "storage/connection_pool.h"
#include "storage/journal.h"
#include "storage/migrator.h"
#include "storage/pg_broker_store.h"
#include "storage/pg_certificate_store.h"
#include "storage/pg_device_store.h"
#include "storage/pg_issuer_store.h"

namespace fleetca::app {
namespace {

constexpr int kMaxMessageBytes = 32 << 20;  // a 10,000-device batch fits with room to spare
constexpr int kAuditChainBatch = 5000;
constexpr absl::Duration kAuditChainInterval = absl::Milliseconds(200);

absl::StatusOr<std::unique_ptr<storage::ConnectionPool>> OpenPool(const Config& config) {
  storage::PoolOptions options;
  options.url = config.database_url;
  options.max_connections = config.db_max_connections;
  options.acquire_timeout = config.db_acquire_timeout;
  options.connect_timeout = config.db_connect_timeout;
  return storage::ConnectionPool::Create(std::move(options));
}

absl::Status MigrateNow(storage::ConnectionPool& pool) {
  auto report = storage::Migrate(pool, EmbeddedMigrations());
  if (!report.ok()) return report.status();
  LogInfo("schema up to date", {{"version", std::to_string(report->current_version)},
                                {"applied_now", std::to_string(report->applied.size())}});
  return absl::OkStatus();
}

// Services of the v1 API not built yet: registered so that reflection lists them and every
// call gets UNIMPLEMENTED (the generated base classes' behaviour).
struct PendingServices {
  v1::RevocationService::Service revocation;
  v1::AclService::Service acl;
  v1::BrokerAuthService::Service broker_auth;
  v1::AuditService::Service audit;
  v1::IdentityService::Service identity;

  void RegisterAll(grpc::ServerBuilder& builder) {
    builder.RegisterService(&revocation);
    builder.RegisterService(&acl);
    builder.RegisterService(&broker_auth);
    builder.RegisterService(&audit);
    builder.RegisterService(&identity);
  }
};

// Domain: every store and use case, wired once for serve and init.
struct Domain {
  Domain(const Config& config, storage::ConnectionPool& pool, const pki::KeyRing& ring)
      : device_store(pool),
        issuer_store(pool),
        certificate_store(pool),
        broker_store(pool),
        registry(device_store),
        brokers(broker_store),
        ca(issuer_store, key_store, ring, ca::CaConfig{config.public_base_url}),
        issuance(ca, certificate_store, broker_store,
                 issuance::DefaultProfiles(config.organization)) {}

  storage::PgDeviceStore device_store;
  storage::PgIssuerStore issuer_store;
  storage::PgCertificateStore certificate_store;
  storage::PgBrokerStore broker_store;
  pki::SoftwareKeyStore key_store;
  registry::Registry registry;
  brokers::BrokerRegistry brokers;
  ca::CertificateAuthority ca;
  issuance::Issuance issuance;
};

absl::StatusOr<pki::KeyRing> LoadKeyRing(const Config& config) {
  std::vector<pki::Kek> keks;
  for (size_t i = 0; i < config.keks.size(); ++i) {
    auto kek = pki::Kek::Parse(config.keks[i]);
    if (!kek.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          i == 0 ? "the current KEK" : "a previous KEK", ": ", kek.status().message()));
    }
    keks.push_back(*std::move(kek));
  }
  return pki::KeyRing::Create(std::move(keks));
}

int Init(const Config& config, Domain& domain) {
  ca::InitOptions options;
  options.subject.common_name = config.ca_name;
  options.subject.organization = config.organization;
  auto algorithm = pki::ParseKeyAlgorithmName(config.ca_key_algorithm);
  if (!algorithm.ok()) {
    LogError("bad configuration", {{"error", absl::StrCat("--ca_key_algorithm: ",
                                                          algorithm.status().message())}});
    return 2;
  }
  options.root_algorithm = options.intermediate_algorithm = *algorithm;
  options.offline_root = config.offline_root;
  RequestContext ctx;
  ctx.actor = "fleetca-server init";
  auto result = domain.ca.Initialize(options, ctx);
  if (!result.ok()) {
    LogError("init failed", {{"error", std::string(result.status().message())}});
    return 1;
  }
  for (const auto& issuer : result->issuers) {
    const bool created = std::find(result->created.begin(), result->created.end(), issuer.id) !=
                         result->created.end();
    LogInfo(created ? "issuer created" : "issuer exists",
            {{"issuer", issuer.id},
             {"state", storage::IssuerStateName(issuer.state)},
             {"subject", issuer.subject},
             {"algorithm", issuer.algorithm}});
  }
  return 0;
}

int Serve(const Config& config, storage::ConnectionPool& pool, Domain& domain) {
  api::DeviceRegistryService device_registry_service(domain.registry);
  api::CertificateAuthorityService certificate_authority_service(domain.ca);
  api::IssuanceService issuance_service(domain.issuance);
  api::BrokerSyncService broker_sync_service(domain.brokers);
  PendingServices pending;

  grpc::EnableDefaultHealthCheckService(true);
  // gRPC serves health itself but does not link its descriptor; touching it here keeps
  // grpc/health/v1/health.pb.o in the binary, so reflection clients can call Health.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(config.listen, grpc::InsecureServerCredentials(), &port);
  // gRPC sets SO_REUSEPORT by default: a second server on a taken port would silently share
  // it and split the calls. Refuse instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  // The synchronous server makes a thread when every poller is busy and ends it when more
  // than MAX_POLLERS (default 2) are idle: under steady load from many clients that is a
  // thread created and destroyed per few calls. Idle pollers are cheap; keep them.
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 64);
  builder.RegisterService(&device_registry_service);
  builder.RegisterService(&certificate_authority_service);
  builder.RegisterService(&issuance_service);
  builder.RegisterService(&broker_sync_service);
  pending.RegisterAll(builder);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || (port == 0 && config.listen.rfind("unix:", 0) != 0)) {
    LogError("cannot listen", {{"address", config.listen},
                               {"hint", "is the port in use or the address not local?"}});
    return 1;
  }
  LogInfo("serving", {{"address", config.listen}, {"port", std::to_string(port)}});

  // Health: SERVING while the database answers, NOT_SERVING otherwise.
  absl::Notification stopping;
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  // Implemented services report health by name too (the unimplemented ones stay unknown).
  for (const char* name :
       {v1::DeviceRegistryService::service_full_name(), v1::CertificateAuthorityService::service_full_name(),
        v1::IssuanceService::service_full_name(), v1::BrokerSyncService::service_full_name()}) {
    health->SetServingStatus(name, true);
  }
  std::thread health_thread([&] {
    bool last = true;
    do {
      const absl::Status st = pool.Ping();
      if (st.ok() != last) {
        last = st.ok();
        if (last) {
          LogInfo("database reachable again");
        } else {
          LogWarning("database unreachable", {{"error", std::string(st.message())}});
        }
      }
      health->SetServingStatus(last);  // "" and every service name set below
    } while (!stopping.WaitForNotificationWithTimeout(absl::Seconds(2)));
  });

  // The audit sequencer: chains new audit entries a moment after they commit (one replica
  // at a time; the others find the sequencer busy and skip the round).
  std::thread audit_thread([&] {
    do {
      int chained = 0;
      do {
        absl::Status st = pool.Transact("chain audit log", storage::TxMode::kReadWrite,
                                        [&](pqxx::transaction_base& tx) {
                                          chained = storage::ChainAudit(tx, kAuditChainBatch);
                                          return absl::OkStatus();
                                        });
        if (!st.ok()) break;  // the database is down: health reports it; try next round
      } while (chained == kAuditChainBatch && !stopping.HasBeenNotified());
    } while (!stopping.WaitForNotificationWithTimeout(kAuditChainInterval));
  });

  // SIGTERM/SIGINT: stop accepting, let in-flight calls finish (up to the grace period).
  std::thread signal_thread([&] {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    int sig = 0;
    sigwait(&set, &sig);
    LogInfo("shutting down", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"},
                              {"grace", absl::FormatDuration(config.shutdown_grace)}});
    stopping.Notify();
    health->SetServingStatus(false);
    // Shutdown waits for running handlers; past the grace period gRPC cancels the calls,
    // and the database statements they wait on are cancelled here so the handlers return
    // (their transactions roll back: the callers were told the calls failed).
    absl::Notification shut_down;
    std::thread shutdown_thread([&] {
      server->Shutdown(std::chrono::system_clock::now() +
                       absl::ToChronoMilliseconds(config.shutdown_grace));
      shut_down.Notify();
    });
    if (!shut_down.WaitForNotificationWithTimeout(config.shutdown_grace)) {
      do {
        pool.CancelRunningQueries();
      } while (!shut_down.WaitForNotificationWithTimeout(absl::Seconds(1)));
    }
    shutdown_thread.join();
  });

  server->Wait();
  signal_thread.join();
  health_thread.join();
  audit_thread.join();
  pool.Close();
  LogInfo("stopped");
  return 0;
}

}  // namespace

int Main(int argc, char** argv) {
  // Block the shutdown signals in every thread (gRPC's included); the signal thread
  // receives them with sigwait.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  auto config = LoadConfig(argc, argv);
  if (!config.ok()) {
    LogError("bad configuration", {{"error", std::string(config.status().message())}});
    return 2;
  }
  SetMinLogLevel(config->log_level);
  if (config->command == "gen-kek") {
    auto kek = pki::Kek::Generate(config->kek_id);
    if (!kek.ok()) {
      LogError("gen-kek failed", {{"error", std::string(kek.status().message())}});
      return 2;
    }
    std::printf("%s\n", kek->Serialize().c_str());
    return 0;
  }
  std::optional<pki::KeyRing> ring;
  if (config->command != "migrate") {
    auto loaded = LoadKeyRing(*config);
    if (!loaded.ok()) {
      LogError("bad configuration", {{"error", std::string(loaded.status().message())}});
      return 2;
    }
    ring = *std::move(loaded);
  }
  auto pool = OpenPool(*config);
  if (!pool.ok()) {
    LogError("cannot open the database", {{"error", std::string(pool.status().message())}});
    return 1;
  }
  if (absl::Status st = MigrateNow(**pool); !st.ok()) {
    LogError("migration failed", {{"error", std::string(st.message())}});
    return 1;
  }
  if (config->command == "migrate") return 0;
  Domain domain(*config, **pool, *ring);
  // Every CA key must unwrap under the configured KEKs, or the server does not start.
  if (absl::Status st = domain.ca.LoadKeys(); !st.ok()) {
    LogError("cannot load the CA keys", {{"error", std::string(st.message())}});
    return 1;
  }
  if (config->command == "init") return Init(*config, domain);
  return Serve(*config, **pool, domain);
}

}  // namespace fleetca::app
