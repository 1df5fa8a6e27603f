#include "server/app/app.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>

#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/logging.h"
#include "fleetca/v1/acl.grpc.pb.h"
#include "fleetca/v1/audit.grpc.pb.h"
#include "fleetca/v1/broker_auth.grpc.pb.h"
#include "fleetca/v1/broker_sync.grpc.pb.h"
#include "fleetca/v1/certificate_authority.grpc.pb.h"
#include "fleetca/v1/identity.grpc.pb.h"
#include "fleetca/v1/issuance.grpc.pb.h"
#include "fleetca/v1/revocation.grpc.pb.h"
#include "grpc/health/v1/health.pb.h"
#include "migrations/embedded_migrations.h"
#include "server/api/device_registry_service.h"
#include "server/app/config.h"
#include "server/registry/registry.h"
#include "storage/connection_pool.h"
#include "storage/migrator.h"
#include "storage/pg_device_store.h"

namespace fleetca::app {
namespace {

constexpr int kMaxMessageBytes = 32 << 20;  // a 10,000-device batch fits with room to spare

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
  v1::CertificateAuthorityService::Service certificate_authority;
  v1::IssuanceService::Service issuance;
  v1::RevocationService::Service revocation;
  v1::AclService::Service acl;
  v1::BrokerSyncService::Service broker_sync;
  v1::BrokerAuthService::Service broker_auth;
  v1::AuditService::Service audit;
  v1::IdentityService::Service identity;

  void RegisterAll(grpc::ServerBuilder& builder) {
    builder.RegisterService(&certificate_authority);
    builder.RegisterService(&issuance);
    builder.RegisterService(&revocation);
    builder.RegisterService(&acl);
    builder.RegisterService(&broker_sync);
    builder.RegisterService(&broker_auth);
    builder.RegisterService(&audit);
    builder.RegisterService(&identity);
  }
};

int Serve(const Config& config, storage::ConnectionPool& pool) {
  storage::PgDeviceStore device_store(pool);
  registry::Registry registry(device_store);
  api::DeviceRegistryService device_registry_service(registry);
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
  builder.RegisterService(&device_registry_service);
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
  health->SetServingStatus(v1::DeviceRegistryService::service_full_name(), true);
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
  return Serve(*config, **pool);
}

}  // namespace fleetca::app
