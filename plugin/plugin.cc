// fleetca_auth.so: the mosquitto 2.0 plugin (v5 API). In stream mode (the default) it
// follows fleetca's Watch stream on a background thread and decides CONNECT and every ACL
// check in memory on the broker's thread; revoked, suspended or narrowed clients are kicked
// from MOSQ_EVT_TICK. In query mode it asks AuthorizeConnect per CONNECT under a deadline.
// The logic is in the fleetca_plugin library (Enforcer, Follower, QueryPolicy); this file
// only wires mosquitto's callbacks to it. docs/mosquitto-plugin.md says how to run it.

// mosquitto_broker.h before mosquitto_plugin.h (the latter uses the former's types).
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <openssl/x509.h>

#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fleetca/v1/broker_auth.grpc.pb.h"
#include "common/logging.h"
#include "plugin/cache.h"
#include "plugin/enforcer.h"
#include "plugin/follower.h"
#include "plugin/options.h"
#include "plugin/query.h"
#include "sync_client/connection.h"

#define FLEETCA_PLUGIN_EXPORT extern "C" __attribute__((visibility("default")))

namespace fleetca::plugin {
namespace {

// Logs: mosquitto_log_printf is for the broker thread only (it may publish on $SYS), so
// every line is queued, and the queue is written out on the broker thread: after each
// callback that logged, and on every TICK.
constexpr size_t kMaxQueuedLines = 10000;

struct LogQueue {
  absl::Mutex mu;
  std::deque<std::pair<int, std::string>> lines ABSL_GUARDED_BY(mu);
  size_t dropped ABSL_GUARDED_BY(mu) = 0;
};

LogQueue& Logs() {
  static auto* queue = new LogQueue();
  return *queue;
}

int MosquittoLevel(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return MOSQ_LOG_DEBUG;
    case LogLevel::kInfo:
      return MOSQ_LOG_INFO;
    case LogLevel::kWarning:
      return MOSQ_LOG_WARNING;
    case LogLevel::kError:
      return MOSQ_LOG_ERR;
  }
  return MOSQ_LOG_INFO;
}

void QueueLine(LogLevel level, absl::string_view msg, const std::vector<LogField>& fields) {
  std::string line = absl::StrCat("fleetca_auth: ", msg);
  for (const auto& [name, value] : fields) absl::StrAppend(&line, " ", name, "=", value);
  LogQueue& q = Logs();
  absl::MutexLock lock(&q.mu);
  if (q.lines.size() >= kMaxQueuedLines) {
    ++q.dropped;
    return;
  }
  q.lines.emplace_back(MosquittoLevel(level), std::move(line));
}

// DrainLogs: on the broker thread only.
void DrainLogs() {
  std::deque<std::pair<int, std::string>> lines;
  size_t dropped = 0;
  {
    LogQueue& q = Logs();
    absl::MutexLock lock(&q.mu);
    lines.swap(q.lines);
    std::swap(dropped, q.dropped);
  }
  for (const auto& [level, line] : lines) mosquitto_log_printf(level, "%s", line.c_str());
  if (dropped > 0) {
    mosquitto_log_printf(MOSQ_LOG_WARNING, "fleetca_auth: %zu log lines dropped", dropped);
  }
}

// QueryClient: the query mode's connection to fleetca. The channel is made on the first
// call, and every call runs with all signals blocked: threads gRPC starts meanwhile inherit
// that mask, so mosquitto's signals keep reaching mosquitto's thread.
class QueryClient {
 public:
  explicit QueryClient(sync_client::ConnectionConfig config) : config_(std::move(config)) {}

  grpc::Status Call(const v1::AuthorizeConnectRequest& request,
                    v1::AuthorizeConnectResponse* response, absl::Time deadline) {
    const sigset_t previous = BlockAllSignals();
    grpc::Status status;
    if (stub_ == nullptr) {
      auto credentials = sync_client::ChannelCredentialsFor(config_);
      if (credentials.ok()) {
        stub_ = v1::BrokerAuthService::NewStub(
            sync_client::NewChannel(config_, *std::move(credentials)));
      } else {
        status = grpc::Status(grpc::StatusCode::UNAVAILABLE,
                              std::string(credentials.status().message()));
      }
    }
    if (stub_ != nullptr) {
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(deadline));
      status = stub_->AuthorizeConnect(&context, request, response);
    }
    RestoreSignals(previous);
    return status;
  }

 private:
  const sync_client::ConnectionConfig config_;
  std::unique_ptr<v1::BrokerAuthService::Stub> stub_;
};

struct Plugin {
  explicit Plugin(PluginOptions o) : options(std::move(o)) {
    if (options.mode == Mode::kStream) {
      policy = std::make_unique<Enforcer>(box, options.enforcer);
      follower = std::make_unique<Follower>(options.follower, box);
    } else {
      query = std::make_unique<QueryClient>(options.follower.connection);
      QueryOptions q;
      q.timeout = options.query_timeout;
      policy = std::make_unique<QueryPolicy>(
          [client = query.get()](const v1::AuthorizeConnectRequest& request,
                                 v1::AuthorizeConnectResponse* response, absl::Time deadline) {
            return client->Call(request, response, deadline);
          },
          q);
    }
  }

  mosquitto_plugin_id_t* id = nullptr;
  PluginOptions options;
  SnapshotBox box;
  std::unique_ptr<BrokerPolicy> policy;
  std::unique_ptr<Follower> follower;   // stream mode
  std::unique_ptr<QueryClient> query;   // query mode
};

int OnBasicAuth(int, void* event_data, void* userdata) {
  auto* event = static_cast<mosquitto_evt_basic_auth*>(event_data);
  auto* plugin = static_cast<Plugin*>(userdata);
  const char* id = mosquitto_client_id(event->client);
  const std::string client_id = id != nullptr ? id : "";
  X509* cert = static_cast<X509*>(mosquitto_client_certificate(event->client));
  const Decision decision = plugin->policy->OnConnect(event->client, client_id, cert);
  X509_free(cert);
  if (!decision.allowed()) {
    const char* address = mosquitto_client_address(event->client);
    LogWarning("connection refused", {{"client_id", client_id},
                                      {"address", address != nullptr ? address : ""},
                                      {"reason", std::string(VerdictName(decision.verdict))},
                                      {"detail", decision.message}});
    DrainLogs();
    return MOSQ_ERR_AUTH;
  }
  // The username is the certificate's principal, whatever the client sent (spoofable).
  mosquitto_set_username(event->client, decision.principal_id.c_str());
  if (decision.verdict == Verdict::kAllowed && !decision.message.empty()) {
    LogWarning("connection admitted", {{"client_id", client_id}, {"detail", decision.message}});
    DrainLogs();
  }
  return MOSQ_ERR_SUCCESS;
}

int OnAclCheck(int, void* event_data, void* userdata) {
  auto* event = static_cast<mosquitto_evt_acl_check*>(event_data);
  auto* plugin = static_cast<Plugin*>(userdata);
  acl::Operation op;
  switch (event->access) {
    case MOSQ_ACL_READ:
      op = acl::Operation::kReceive;
      break;
    case MOSQ_ACL_WRITE:
      op = acl::Operation::kPublish;
      break;
    case MOSQ_ACL_SUBSCRIBE:
      op = acl::Operation::kSubscribe;
      break;
    case MOSQ_ACL_UNSUBSCRIBE:
      return MOSQ_ERR_SUCCESS;  // leaving a subscription never widens anything
    default:
      return MOSQ_ERR_ACL_DENIED;
  }
  const char* id = mosquitto_client_id(event->client);
  if (event->topic == nullptr || id == nullptr) return MOSQ_ERR_ACL_DENIED;
  return plugin->policy->Allowed(event->client, id, op, event->topic) ? MOSQ_ERR_SUCCESS
                                                                        : MOSQ_ERR_ACL_DENIED;
}

int OnTick(int, void*, void* userdata) {
  auto* plugin = static_cast<Plugin*>(userdata);
  for (const Kick& kick : plugin->policy->OnTick()) {
    LogInfo("disconnecting client", {{"client_id", kick.client_id}, {"reason", kick.reason}});
    DrainLogs();  // the reason before mosquitto's own line about the disconnection
    mosquitto_kick_client_by_clientid(kick.client_id.c_str(), false);
  }
  DrainLogs();
  return MOSQ_ERR_SUCCESS;
}

int OnDisconnect(int, void* event_data, void* userdata) {
  auto* event = static_cast<mosquitto_evt_disconnect*>(event_data);
  static_cast<Plugin*>(userdata)->policy->OnDisconnect(event->client);
  return MOSQ_ERR_SUCCESS;
}

struct Registration {
  int event;
  MOSQ_FUNC_generic_callback callback;
};

constexpr Registration kCallbacks[] = {
    {MOSQ_EVT_BASIC_AUTH, OnBasicAuth},
    {MOSQ_EVT_ACL_CHECK, OnAclCheck},
    {MOSQ_EVT_TICK, OnTick},
    {MOSQ_EVT_DISCONNECT, OnDisconnect},
};

int Init(mosquitto_plugin_id_t* identifier, void** userdata, mosquitto_opt* opts, int count) {
  std::vector<std::pair<std::string, std::string>> options;
  for (int i = 0; i < count; ++i) {
    options.emplace_back(opts[i].key != nullptr ? opts[i].key : "",
                         opts[i].value != nullptr ? opts[i].value : "");
  }
  absl::StatusOr<PluginOptions> parsed = ParsePluginOptions(options);
  if (!parsed.ok()) {
    mosquitto_log_printf(MOSQ_LOG_ERR, "fleetca_auth: %s",
                         std::string(parsed.status().message()).c_str());
    return MOSQ_ERR_INVAL;
  }
  SetMinLogLevel(parsed->log_level);
  SetLogSink(QueueLine);
  auto plugin = std::make_unique<Plugin>(*std::move(parsed));
  plugin->id = identifier;

  // The last policy persisted, if any, is enforced until the stream delivers a newer one.
  const std::string& cache_path = plugin->options.follower.cache_path;
  if (plugin->follower != nullptr && !cache_path.empty()) {
    absl::StatusOr<LoadedCache> cache = LoadCache(cache_path);
    if (cache.ok()) {
      LogInfo("cached policy loaded", {{"path", cache_path},
                                       {"revision", absl::StrCat(cache->revision)},
                                       {"objects", absl::StrCat(cache->objects)}});
      plugin->follower->Restore(*std::move(cache));
    } else if (absl::IsNotFound(cache.status())) {
      LogInfo("no cached policy yet", {{"path", cache_path}});
    } else {
      LogError("cached policy ignored", {{"path", cache_path},
                                         {"error", std::string(cache.status().message())}});
    }
  }
  for (const Registration& r : kCallbacks) {
    const int rc = mosquitto_callback_register(identifier, r.event, r.callback, nullptr,
                                               plugin.get());
    if (rc != MOSQ_ERR_SUCCESS) {
      LogError("cannot register a callback", {{"event", absl::StrCat(r.event)}});
      for (const Registration& undo : kCallbacks) {
        mosquitto_callback_unregister(identifier, undo.event, undo.callback, nullptr);
      }
      DrainLogs();
      SetLogSink(nullptr);
      return rc;
    }
  }
  if (plugin->follower != nullptr) plugin->follower->Start();
  LogInfo("started", {{"mode", plugin->options.mode == Mode::kStream ? "stream" : "query"},
                      {"server", plugin->options.follower.connection.server},
                      {"broker_id", plugin->options.follower.connection.broker_id},
                      {"cache", cache_path.empty() ? "none" : cache_path}});
  DrainLogs();
  *userdata = plugin.release();
  return MOSQ_ERR_SUCCESS;
}

int Cleanup(void* userdata) {
  auto* plugin = static_cast<Plugin*>(userdata);
  if (plugin == nullptr) return MOSQ_ERR_SUCCESS;
  for (const Registration& r : kCallbacks) {
    mosquitto_callback_unregister(plugin->id, r.event, r.callback, nullptr);
  }
  if (plugin->follower != nullptr) plugin->follower->Stop();  // writes the cache if unsaved
  LogInfo("stopped");
  DrainLogs();
  SetLogSink(nullptr);
  delete plugin;
  return MOSQ_ERR_SUCCESS;
}

}  // namespace
}  // namespace fleetca::plugin

FLEETCA_PLUGIN_EXPORT int mosquitto_plugin_version(int supported_version_count,
                                                   const int* supported_versions) {
  for (int i = 0; i < supported_version_count; ++i) {
    if (supported_versions[i] == 5) return 5;
  }
  return -1;
}

FLEETCA_PLUGIN_EXPORT int mosquitto_plugin_init(mosquitto_plugin_id_t* identifier, void** userdata,
                                                struct mosquitto_opt* options, int option_count) {
  return fleetca::plugin::Init(identifier, userdata, options, option_count);
}

FLEETCA_PLUGIN_EXPORT int mosquitto_plugin_cleanup(void* userdata, struct mosquitto_opt*, int) {
  return fleetca::plugin::Cleanup(userdata);
}
