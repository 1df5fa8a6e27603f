#include "server/app/app.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "fleetca/v1/acl.grpc.pb.h"
#include "fleetca/v1/audit.grpc.pb.h"
#include "fleetca/v1/broker_auth.grpc.pb.h"
#include "fleetca/v1/identity.grpc.pb.h"
#include "fleetca/v1/revocation.grpc.pb.h"
#include "grpc/health/v1/health.pb.h"
#include "migrations/embedded_migrations.h"
#include "pki/kek.h"
#include "server/api/acl_service.h"
#include "server/api/audit_service.h"
#include "server/api/broker_auth_service.h"
#include "server/api/broker_sync_service.h"
#include "server/api/certificate_authority_service.h"
#include "server/api/device_registry_service.h"
#include "server/api/identity_service.h"
#include "server/api/issuance_service.h"
#include "server/api/revocation_service.h"
#include "server/api/rpc_observer.h"
#include "server/api/service_metrics.h"
#include "server/app/config.h"
#include "server/app/server_metrics.h"
#include "server/app/server_tls.h"
#include "server/app/verify_audit.h"
#include "server/auth/auth_processor.h"
#include "server/brokers/broker_registry.h"
#include "server/http/http_server.h"
#include "server/ca/certificate_authority.h"
#include "server/ca/external_cas.h"
#include "server/identity/identities.h"
#include "server/issuance/issuance.h"
#include "server/registry/registry.h"
#include "storage/connection_pool.h"
#include "storage/journal.h"
#include "storage/migrator.h"
#include "storage/pg_audit_store.h"
#include "storage/pg_broker_store.h"
#include "storage/pg_certificate_store.h"
#include "storage/pg_device_store.h"
#include "storage/pg_identity_store.h"
#include "storage/pg_acl_store.h"
#include "storage/pg_change_log.h"
#include "storage/pg_external_ca_store.h"
#include "storage/pg_sync_store.h"
#include "storage/pg_crl_store.h"
#include "storage/pg_listener.h"
#include "storage/pg_revocation_store.h"
#include "storage/pg_issuer_store.h"

namespace fleetca::app {
namespace {

constexpr int kAuditChainBatch = 5000;
constexpr absl::Duration kAuditChainInterval = absl::Milliseconds(200);
// The policy index's least pause between two refreshes (the most a change waits for it,
// beyond its NOTIFY).
constexpr absl::Duration kPolicyRefreshPause = absl::Milliseconds(50);
// The sync feed's least pause between two reads of the change log (brokers' deltas wait for
// it at most, beyond their NOTIFY).
constexpr absl::Duration kSyncFeedPause = absl::Milliseconds(10);
// How often a replica records its brokers' streams (readers ignore a record older than 60 s).
constexpr absl::Duration kStreamRecordInterval = absl::Seconds(5);

// ReplicaId names this process among the replicas: host name, pid and a random part.
std::string ReplicaId() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = 0;
  absl::BitGen gen;
  return absl::StrCat(std::string(host).substr(0, 40), "/", getpid(), "/",
                      absl::Hex(absl::Uniform<uint32_t>(gen)));
}

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


// Domain: every store and use case, wired once for serve and init.
struct Domain {
  Domain(const Config& config, storage::ConnectionPool& pool, const pki::KeyRing& ring)
      : device_store(pool),
        issuer_store(pool),
        certificate_store(pool),
        broker_store(pool),
        identity_store(pool),
        audit_store(pool),
        revocation_store(pool),
        crl_store(pool),
        acl_store(pool),
        change_log(pool),
        sync_store(pool, acl_store),
        external_ca_store(pool),
        registry(device_store),
        policy(acl_store, device_store, identity_store),
        policy_index(device_store, identity_store, acl_store, sync_store, change_log),
        brokers(broker_store),
        ca(issuer_store, key_store, ring, ca::CaConfig{config.public_base_url},
           &external_ca_store),
        external_cas(external_ca_store, ca),
        issuance(ca, certificate_store, broker_store,
                 issuance::DefaultProfiles(config.organization)),
        identities(ca, identity_store, broker_store, &authenticator),
        revocations(revocation_store, &authenticator),
        crls(ca, crl_store,
             revocation::CrlOptions{config.crl_validity, config.crl_deltas,
                                    config.crl_complete_min_interval}) {}

  storage::PgDeviceStore device_store;
  storage::PgIssuerStore issuer_store;
  storage::PgCertificateStore certificate_store;
  storage::PgBrokerStore broker_store;
  storage::PgIdentityStore identity_store;
  storage::PgAuditStore audit_store;
  storage::PgRevocationStore revocation_store;
  storage::PgCrlStore crl_store;
  storage::PgAclStore acl_store;
  storage::PgChangeLogReader change_log;
  storage::PgSyncStore sync_store;
  storage::PgExternalCaStore external_ca_store;
  pki::SoftwareKeyStore key_store;
  auth::Authenticator authenticator;
  registry::Registry registry;
  policy::Policy policy;
  policy::PolicyIndex policy_index;
  brokers::BrokerRegistry brokers;
  ca::CertificateAuthority ca;
  ca::ExternalCas external_cas;
  issuance::Issuance issuance;
  identity::Identities identities;
  revocation::Revocations revocations;
  revocation::CrlPublisher crls;
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

// WriteFirstAdmin: once the operators CA is active and no admin identity exists, issues
// the first admin and writes its credential (key, certificate, chain) with mode 0600, and
// the CA bundle that verifies the server (ca.pem beside it).
int WriteFirstAdmin(const Config& config, Domain& domain) {
  const std::string& path = config.admin_credential_file;
  const size_t slash = path.rfind('/');
  const std::string ca_path = (slash == std::string::npos ? "" : path.substr(0, slash + 1)) + "ca.pem";
  auto bundle = domain.ca.TrustBundle(ca::BundleScope::kServerAuth, nullptr);
  if (bundle.ok()) {
    if (absl::Status st = WriteFileAtomically(ca_path, *bundle, 0644); !st.ok()) {
      LogError("init failed", {{"error", std::string(st.message())}});
      return 1;
    }
  }
  if (!domain.ca.Active(storage::IssuerPurpose::kOperators).ok()) {
    LogWarning("no admin credential yet: the operators CA is not active (offline root: import "
               "its certificate, then run init again)");
    return 0;
  }
  auto admins = domain.identity_store.CountActive("admin");
  if (!admins.ok()) {
    LogError("init failed", {{"error", std::string(admins.status().message())}});
    return 1;
  }
  if (*admins > 0) {
    LogInfo("admin identity exists: no credential written (issue more with "
            "IdentityService.IssueIdentity)",
            {{"admins", std::to_string(*admins)}, {"ca_bundle", ca_path}});
    return 0;
  }
  RequestContext ctx;
  ctx.actor = "local-admin";
  ctx.role = "admin";
  identity::KeySource key;
  key.generate = pki::KeyAlgorithm::kEcdsaP256;
  auto issued = domain.identities.Issue(config.admin_name, auth::Role::kAdmin,
                                        "first admin, made by fleetca-server init", key,
                                        absl::ZeroDuration(), ctx);
  if (!issued.ok()) {
    LogError("cannot issue the first admin", {{"error", std::string(issued.status().message())}});
    return 1;
  }
  const std::string credential =
      absl::StrCat(issued->private_key_pem, issued->certificate_pem, issued->chain_pem);
  if (absl::Status st = WriteFileAtomically(path, credential, 0600); !st.ok()) {
    LogError("cannot write the admin credential",
             {{"error", std::string(st.message())},
              {"hint", "the admin identity exists now: revoke it with another admin, or start "
                       "from a fresh database"}});
    return 1;
  }
  char resolved[PATH_MAX];
  const std::string shown = realpath(path.c_str(), resolved) != nullptr ? resolved : path;
  LogInfo("admin credential written",
          {{"identity", config.admin_name},
           {"file", shown},
           {"ca_bundle", ca_path},
           {"serial", pki::SerialToHex(issued->certificate.serial)},
           {"use", "buf curl / grpcurl: --cert <file> --key <file> --cacert ca.pem"}});
  return 0;
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
  return WriteFirstAdmin(config, domain);
}

int Serve(const Config& config, storage::ConnectionPool& pool, Domain& domain) {
  // Metrics (GET /metrics on the HTTP port): calls by method and code, issuance and
  // revocation counts, and what server_metrics.h reads from the components at scrape time.
  metrics::Registry metrics;
  api::ServiceMetrics service_metrics(metrics);
  // Every call is counted, timed and logged (api/rpc_observer.h): by an interceptor, and
  // for the calls AuthProcessor refuses before any interceptor runs, by its hook. The
  // server owns the interceptor factory; the hook runs only while the server does.
  auto observer = std::make_unique<api::RpcObserverFactory>(metrics, config.access_log);
  api::RpcObserverFactory* const rpc_observer = observer.get();
  api::DeviceRegistryService device_registry_service(domain.registry);
  api::CertificateAuthorityService certificate_authority_service(domain.ca, &domain.external_cas);
  api::IssuanceService issuance_service(domain.issuance, &service_metrics, &domain.external_cas);
  api::SyncFeed sync_feed(domain.change_log, domain.sync_store, api::SyncFeed::Options{});
  api::StreamTracker stream_tracker;
  api::BrokerSyncService broker_sync_service(domain.brokers, sync_feed, stream_tracker);
  api::IdentityService identity_service(domain.identities, domain.certificate_store, domain.ca);
  api::RevocationService revocation_service(domain.revocations, domain.crls, domain.issuance,
                                            domain.registry, &service_metrics,
                                            &domain.external_cas);
  api::AuditService audit_service(domain.audit_store);
  api::AclService acl_service(domain.policy);
  api::BrokerAuthService broker_auth_service(domain.policy_index);
  RegisterServerMetrics(metrics, {&pool, &domain.crls, &stream_tracker, &sync_feed,
                                  &domain.policy_index, &domain.certificate_store});

  // Credentials: TLS with client authentication by default (auth/auth_processor.h), or
  // plaintext on loopback for development.
  std::shared_ptr<grpc::ServerCredentials> credentials;
  ServerCertificateFiles tls_files;
  std::string temporary_tls_dir;  // made here, removed at exit (whichever way Serve returns)
  const auto remove_tls_dir = absl::MakeCleanup([&] {
    if (temporary_tls_dir.empty()) return;
    std::remove(tls_files.key_path.c_str());
    std::remove(tls_files.certificate_path.c_str());
    rmdir(temporary_tls_dir.c_str());
  });
  std::optional<absl::Time> self_issued_until;
  std::shared_ptr<auth::AuthProcessor> processor;
  auth::RateLimiter issuance_limiter(config.issuance_rate_limit, config.issuance_burst);
  int64_t revoked_revision = 0;  // revocations read so far (from every replica)
  auto refresh_auth = [&]() -> absl::Status {
    auto anchors = LoadTrustAnchors(domain.ca);
    if (!anchors.ok()) return anchors.status();
    auto revoked_names = domain.identity_store.LoadRevokedNames();
    if (!revoked_names.ok()) return revoked_names.status();
    auth::RevokedSet set;
    set.identities.insert(revoked_names->begin(), revoked_names->end());
    // Certificate revocations since the last round, identity and device certificates (a
    // page at a time: the first round reads them all).
    constexpr int kPage = 10000;
    for (;;) {
      auto page = domain.revocation_store.RevokedSince(revoked_revision, kPage);
      if (!page.ok()) return page.status();
      set.serials.insert(page->serials_hex.begin(), page->serials_hex.end());
      revoked_revision = page->last_revision;
      if (page->rows < kPage) break;
    }
    domain.authenticator.AddRevoked(set);
    domain.authenticator.SetAnchors(*std::move(anchors));
    return absl::OkStatus();
  };
  if (config.insecure_plaintext) {
    LogWarning("serving WITHOUT TLS or client authentication (--insecure_plaintext): every "
               "caller acts as admin; development only",
               {{"address", config.listen}});
    credentials = grpc::InsecureServerCredentials();
  } else {
    if (!config.tls_cert_file.empty()) {
      tls_files = {config.tls_cert_file, config.tls_key_file};
    } else {
      std::string dir = config.tls_dir;
      if (dir.empty()) {
        char tmpl[] = "/tmp/fleetca-tls-XXXXXX";
        if (mkdtemp(tmpl) == nullptr) {
          LogError("cannot create a directory for the server certificate");
          return 1;
        }
        dir = temporary_tls_dir = tmpl;
      } else if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
        LogError("cannot create --tls_dir", {{"dir", dir}, {"error", strerror(errno)}});
        return 1;
      }
      tls_files = {dir + "/server.pem", dir + "/server.key"};
      auto until = IssueServerCertificate(
          domain.ca, domain.certificate_store,
          config.tls_server_names.empty() ? DefaultServerNames() : config.tls_server_names,
          config.tls_server_validity, tls_files);
      if (!until.ok()) {
        LogError("cannot serve TLS", {{"error", std::string(until.status().message())}});
        return 1;
      }
      self_issued_until = *until;
      LogInfo("server certificate issued", {{"file", tls_files.certificate_path},
                                            {"not_after", absl::FormatTime(*until)}});
    }
    if (absl::Status st = refresh_auth(); !st.ok()) {
      LogError("cannot load the CAs that verify callers", {{"error", std::string(st.message())}});
      return 1;
    }
    // The files are re-read every few seconds: a renewed certificate (ours, or one an
    // operator or cert-manager puts in place) is served without a restart.
    auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
        tls_files.key_path, tls_files.certificate_path, 10);
    grpc::experimental::TlsServerCredentialsOptions options(provider);
    options.watch_identity_key_cert_pairs();
    // The handshake asks for a client certificate; AuthProcessor verifies it on every call
    // (so that a missing, foreign, expired or revoked one gets UNAUTHENTICATED with a
    // reason, and health checks work without one). TLS 1.2 is gRPC's minimum, and its
    // cipher list is AEAD-only with forward secrecy (docs/security.md has the scan).
    options.set_cert_request_type(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_BUT_DONT_VERIFY);
    credentials = grpc::experimental::TlsServerCredentials(options);
    processor = std::make_shared<auth::AuthProcessor>(
        domain.authenticator, issuance_limiter,
        [rpc_observer](const auth::Refusal& refusal) { rpc_observer->Refused(refusal); });
    credentials->SetAuthMetadataProcessor(processor);
  }

  grpc::EnableDefaultHealthCheckService(true);
  // gRPC serves health itself but does not link its descriptor; touching it here keeps
  // grpc/health/v1/health.pb.o in the binary, so reflection clients can call Health.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(config.listen, credentials, &port);
  // gRPC sets SO_REUSEPORT by default: a second server on a taken port would silently share
  // it and split the calls. Refuse instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(config.max_request_bytes);
  // The synchronous server makes a thread when every poller is busy and ends it when more
  // than MAX_POLLERS (default 2) are idle: under steady load from many clients that is a
  // thread created and destroyed per few calls. Idle pollers are cheap; keep them.
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 64);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> observers;
  observers.push_back(std::move(observer));
  builder.experimental().SetInterceptorCreators(std::move(observers));
  builder.RegisterService(&device_registry_service);
  builder.RegisterService(&certificate_authority_service);
  builder.RegisterService(&issuance_service);
  builder.RegisterService(&broker_sync_service);
  builder.RegisterService(&identity_service);
  builder.RegisterService(&audit_service);
  builder.RegisterService(&revocation_service);
  builder.RegisterService(&acl_service);
  builder.RegisterService(&broker_auth_service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || (port == 0 && config.listen.rfind("unix:", 0) != 0)) {
    LogError("cannot listen", {{"address", config.listen},
                               {"hint", "is the port in use or the address not local?"}});
    return 1;
  }
  // The plain-HTTP port of the CRL and CA-certificate URLs (before "serving": a test or
  // an operator that sees "serving" finds both ports up).
  // Readiness (/readyz): the database answers (the health thread's last ping) and the CA's
  // signing keys are loaded (the devices CA is active). Migrations were applied before
  // serving began.
  std::atomic<bool> database_ok{true};
  auto readiness = [&]() -> absl::Status {
    if (!database_ok.load()) return absl::UnavailableError("database unreachable");
    if (!domain.ca.Active(storage::IssuerPurpose::kDevices).ok()) {
      return absl::UnavailableError(
          "no active devices CA with its key loaded (run fleetca-server init)");
    }
    return absl::OkStatus();
  };
  http::HttpServer http_server(domain.crls, domain.ca, readiness, &metrics);
  if (config.http_listen != "off") {
    auto http_port = http_server.Start(config.http_host, config.http_port);
    if (!http_port.ok()) {
      LogError("cannot listen", {{"address", config.http_listen},
                                 {"error", std::string(http_port.status().message())}});
      server->Shutdown();
      return 1;
    }
    LogInfo("http serving", {{"address", config.http_listen},
                             {"port", std::to_string(*http_port)},
                             {"paths", "/crl/<issuer>.crl /ca/<issuer>.crt /healthz /readyz /metrics"}});
  }
  LogInfo("serving", {{"address", config.listen},
                      {"port", std::to_string(port)},
                      {"tls", config.insecure_plaintext ? "off" : "on"}});

  // Health: SERVING while the database answers, NOT_SERVING otherwise.
  absl::Notification stopping;
  absl::Notification server_done;  // server->Wait() returned: every call has ended
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  // Implemented services report health by name too (the unimplemented ones stay unknown).
  for (const char* name :
       {v1::DeviceRegistryService::service_full_name(), v1::CertificateAuthorityService::service_full_name(),
        v1::IssuanceService::service_full_name(), v1::BrokerSyncService::service_full_name(),
        v1::IdentityService::service_full_name(), v1::AuditService::service_full_name(),
        v1::RevocationService::service_full_name()}) {
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
      database_ok.store(last);
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

  // CRLs: built in the background (one replica builds at a time), a round as soon as a
  // revocation commits (NOTIFY fleetca_crl, from any replica) and at least each second.
  // Revocations that commit within a pause of each other, or while a CRL is being built,
  // go into one CRL. The pause is twice the last round (100 ms at least, 1 s at most): at a
  // million entries, a steady trickle of revocations keeps the builder busy a third of the
  // time, not all of it.
  std::thread crl_thread([&] {
    storage::Listener revoked(pool, "fleetca_crl");
    bool failing = false;
    do {
      const absl::Time start = absl::Now();
      auto built = domain.crls.RunOnce(start);
      if (!built.ok() && !failing) {
        LogWarning("cannot build CRLs", {{"error", std::string(built.status().message())}});
      }
      failing = !built.ok();
      const absl::Duration pause =
          std::clamp(2 * (absl::Now() - start), absl::Milliseconds(100), absl::Seconds(1));
      if (stopping.WaitForNotificationWithTimeout(pause)) break;
      revoked.Wait(absl::Seconds(1) - pause);
    } while (!stopping.HasBeenNotified());
  });
  // The broker policy in memory (BrokerAuthService): loaded once, then the committed
  // changes applied when their NOTIFY arrives (at least every second, at most every 50 ms).
  std::thread policy_thread([&] {
    storage::Listener changed(pool, "fleetca_changes");
    bool failing = false;
    while (!stopping.HasBeenNotified()) {
      const absl::Time start = absl::Now();
      absl::Status st;
      if (!domain.policy_index.loaded()) {
        st = domain.policy_index.Load();
        if (st.ok()) {
          const policy::PolicyIndex::Counts c = domain.policy_index.counts();
          LogInfo("policy index loaded",
                  {{"devices", std::to_string(c.devices)},
                   {"identities", std::to_string(c.identities)},
                   {"profiles", std::to_string(c.profiles)},
                   {"assignments", std::to_string(c.assignments)},
                   {"certificates", std::to_string(c.certificates)},
                   {"revision", std::to_string(domain.policy_index.revision())},
                   {"ms", std::to_string(absl::ToInt64Milliseconds(absl::Now() - start))}});
        }
      } else {
        st = domain.policy_index.Refresh().status();
      }
      if (!st.ok() && !failing) {
        LogWarning("cannot refresh the policy index", {{"error", std::string(st.message())}});
      }
      failing = !st.ok();
      if (failing) {
        if (stopping.WaitForNotificationWithTimeout(absl::Seconds(1))) break;
        continue;
      }
      // At most one refresh per kPolicyRefreshPause: changes committing meanwhile (a busy
      // fleet commits hundreds a second) are read together, not one query each.
      if (stopping.WaitForNotificationWithTimeout(kPolicyRefreshPause)) break;
      changed.Wait(absl::Seconds(1));
    }
  });
  // The brokers' sync streams' shared window of recent changes: read when their NOTIFY
  // arrives (at least every second, at most every kSyncFeedPause).
  std::thread sync_feed_thread([&] {
    storage::Listener changed(pool, "fleetca_changes");
    bool failing = false;
    while (!stopping.HasBeenNotified()) {
      const absl::Status st = sync_feed.Poll().status();
      if (!st.ok() && !failing) {
        LogWarning("cannot read changes for the sync streams",
                   {{"error", std::string(st.message())}});
      }
      failing = !st.ok();
      if (stopping.WaitForNotificationWithTimeout(failing ? absl::Seconds(1) : kSyncFeedPause)) {
        break;
      }
      changed.Wait(absl::Seconds(1));
    }
  });
  // This replica's Watch streams, recorded for GetBroker's sync state (every few seconds,
  // and once more at exit).
  std::thread stream_record_thread([&] {
    const std::string replica_id = ReplicaId();
    bool failing = false;
    auto record = [&] {
      const absl::Status st =
          domain.broker_store.RecordStreams(replica_id, stream_tracker.Take());
      if (!st.ok() && !failing) {
        LogWarning("cannot record the brokers' streams", {{"error", std::string(st.message())}});
      }
      failing = !st.ok();
    };
    while (!stopping.WaitForNotificationWithTimeout(kStreamRecordInterval)) record();
    server_done.WaitForNotification();  // the streams have ended: record that
    record();
  });
  // ... and stored for the other replicas by a thread of their own (the last ones at exit,
  // once crl_thread is done).
  auto store_crls = [&](absl::Duration wait, bool* failing) {
    auto stored = domain.crls.StorePending(wait, /*flush=*/wait == absl::ZeroDuration());
    if (!stored.ok() && !*failing) {
      LogWarning("cannot store CRLs", {{"error", std::string(stored.status().message())}});
    }
    *failing = !stored.ok();
  };
  std::thread crl_store_thread([&] {
    bool failing = false;
    while (!stopping.HasBeenNotified()) store_crls(absl::Seconds(1), &failing);
  });

  // Callers' CAs and revocations: re-read every second, so a revocation or a CA rotation on
  // another replica applies here within a second (this replica's own apply at once).
  std::thread auth_thread([&] {
    if (processor == nullptr) return;
    while (!stopping.WaitForNotificationWithTimeout(absl::Seconds(1))) {
      if (absl::Status st = refresh_auth(); !st.ok()) {
        LogWarning("cannot refresh revoked identities", {{"error", std::string(st.message())}});
      }
      // The self-issued server certificate is renewed at two thirds of its lifetime.
      if (self_issued_until.has_value() &&
          absl::Now() > *self_issued_until - config.tls_server_validity / 3) {
        auto until = IssueServerCertificate(
            domain.ca, domain.certificate_store,
            config.tls_server_names.empty() ? DefaultServerNames() : config.tls_server_names,
            config.tls_server_validity, tls_files);
        if (until.ok()) {
          self_issued_until = *until;
          LogInfo("server certificate renewed", {{"not_after", absl::FormatTime(*until)}});
        } else {
          LogWarning("cannot renew the server certificate",
                     {{"error", std::string(until.status().message())}});
        }
      }
    }
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
    sync_feed.Shutdown();  // Watch streams end (UNAVAILABLE: brokers reconnect elsewhere)
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
  server_done.Notify();
  http_server.Stop();
  signal_thread.join();
  health_thread.join();
  audit_thread.join();
  crl_thread.join();
  policy_thread.join();
  sync_feed_thread.join();
  stream_record_thread.join();
  crl_store_thread.join();
  bool store_failing = false;
  store_crls(absl::ZeroDuration(), &store_failing);
  auth_thread.join();
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
  // Debian builds Abseil with its mutex deadlock detection on: every lock of an
  // absl::Mutex (fleetca's and gRPC's) updates a global lock-order graph, 1.3% of the
  // server's CPU under issuance load (docs/performance.md). The sanitizer builds of the
  // tests (TSan) check lock order instead.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

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
  if (config->command == "roles") {
    for (const std::string& method : auth::TableMethods()) {
      std::vector<std::string> roles;
      for (auth::Role r : auth::kAllRoles) {
        if (auth::MayCall(r, method)) roles.push_back(absl::StrCat("\"", auth::RoleName(r), "\""));
      }
      std::printf("{\"method\":\"%s\",\"roles\":[%s]}\n", method.c_str(),
                  absl::StrJoin(roles, ",").c_str());
    }
    return 0;
  }
  std::optional<pki::KeyRing> ring;
  if (config->command != "migrate" && config->command != "verify-audit") {
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
  // verify-audit only reads (it may run as a read-only database user, from a cron job or
  // an auditor's machine): it never migrates.
  if (config->command == "verify-audit") {
    return RunVerifyAudit(**pool, config->verify_from, config->verify_to, config->verify_anchor);
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
