#include "server/http/http_server.h"

#include <httplib.h>

#include <algorithm>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "pki/openssl_util.h"

namespace fleetca::http {
namespace {

// Issuer ids are ^[a-z0-9][a-z0-9._-]{0,62}$ (migration 0001): nothing else is an issuer.
constexpr char kIssuerPattern[] = "([a-z0-9][a-z0-9._-]{0,62})";

int HttpStatusFor(const absl::Status& st) {
  switch (st.code()) {
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kFailedPrecondition:
      return 404;
    case absl::StatusCode::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

// Serve answers with body (kept alive by owner while it is sent, without a copy: a CRL of
// a million entries is 45 MiB) unless the client already holds it (If-None-Match).
void Serve(const httplib::Request& req, httplib::Response& res, std::shared_ptr<const void> owner,
           absl::string_view body, const std::string& sha256_hex, const char* content_type,
           int max_age_seconds) {
  const std::string etag = absl::StrCat("\"", sha256_hex, "\"");
  res.set_header("ETag", etag);
  res.set_header("Cache-Control", absl::StrCat("public, max-age=", max_age_seconds));
  if (req.get_header_value("If-None-Match") == etag) {
    res.status = 304;
    return;
  }
  res.set_content_provider(
      body.size(), content_type,
      [owner = std::move(owner), body](size_t offset, size_t length, httplib::DataSink& sink) {
        return sink.write(body.data() + offset, std::min(length, body.size() - offset));
      });
}

// The route a path took, for the metrics (a bounded set: never the path itself).
std::string RouteOf(const std::string& path) {
  for (const char* prefix : {"/crl/delta/", "/crl/", "/ca/"}) {
    if (absl::StartsWith(path, prefix)) return std::string(prefix) + "*";
  }
  for (const char* exact : {"/healthz", "/readyz", "/metrics"}) {
    if (path == exact) return exact;
  }
  return "other";
}

void Refuse(httplib::Response& res, const absl::Status& st) {
  res.status = HttpStatusFor(st);
  // The status message names the issuer or says to retry; never internals.
  res.set_content(res.status == 500 ? std::string("internal error\n")
                                    : absl::StrCat(st.message(), "\n"),
                  "text/plain");
}

}  // namespace

HttpServer::HttpServer(revocation::CrlPublisher& crls, ca::CertificateAuthority& ca,
                       std::function<absl::Status()> readiness, metrics::Registry* metrics)
    : crls_(crls),
      ca_(ca),
      readiness_(std::move(readiness)),
      server_(std::make_unique<httplib::Server>()) {
  // Probes (Kubernetes liveness and readiness): no state, nothing secret in the answers.
  server_->Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_header("Cache-Control", "no-store");
    res.set_content("ok\n", "text/plain");
  });
  server_->Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
    res.set_header("Cache-Control", "no-store");
    const absl::Status st = readiness_ ? readiness_() : absl::OkStatus();
    if (st.ok()) {
      res.set_content("ready\n", "text/plain");
      return;
    }
    res.status = 503;
    res.set_content(absl::StrCat("not ready: ", st.message(), "\n"), "text/plain");
  });
  if (metrics != nullptr) {
    server_->Get("/metrics", [metrics](const httplib::Request&, httplib::Response& res) {
      res.set_header("Cache-Control", "no-store");
      res.set_content(metrics->Render(), metrics::kContentType);
    });
    metrics::CounterFamily& requests = metrics->AddCounter(
        "fleetca_http_requests_total", "HTTP requests answered, by route and status code.",
        {"route", "code"});
    server_->set_logger([&requests](const httplib::Request& req, const httplib::Response& res) {
      requests.With({RouteOf(req.path), std::to_string(res.status)}).Increment();
    });
  }
  // The complete CRL, and the delta CRL (its freshestCRL extension names that URL).
  for (const bool delta : {false, true}) {
    server_->Get(absl::StrCat(delta ? "/crl/delta/" : "/crl/", kIssuerPattern, "\\.crl"),
                 [this, delta](const httplib::Request& req, httplib::Response& res) {
                   auto crl = crls_.Latest(req.matches[1], delta);
                   if (!crl.ok()) return Refuse(res, crl.status());
                   // Cached at most a minute, and never past the CRL's nextUpdate.
                   const int64_t left = absl::ToInt64Seconds((*crl)->next_update - absl::Now());
                   Serve(req, res, *crl, (*crl)->der, (*crl)->sha256_hex, "application/pkix-crl",
                         static_cast<int>(std::clamp<int64_t>(left, 0, 60)));
                 });
  }
  server_->Get(absl::StrCat("/ca/", kIssuerPattern, "\\.crt"),
               [this](const httplib::Request& req, httplib::Response& res) {
                 auto issuer = ca_.GetIssuer(req.matches[1]);
                 if (!issuer.ok()) return Refuse(res, issuer.status());
                 if (issuer->certificate_der.empty()) {
                   return Refuse(res, absl::NotFoundError("this issuer has no certificate yet"));
                 }
                 auto der = std::make_shared<const std::string>(issuer->certificate_der);
                 Serve(req, res, der, *der, pki::Sha256Hex(*der), "application/pkix-cert", 3600);
               });
}

HttpServer::~HttpServer() { Stop(); }

absl::StatusOr<int> HttpServer::Start(const std::string& host, int port) {
  const int bound = port == 0 ? server_->bind_to_any_port(host) : 
                    (server_->bind_to_port(host, port) ? port : -1);
  if (bound <= 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", host, ":", port));
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  return bound;
}

void HttpServer::Stop() {
  if (server_ != nullptr) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace fleetca::http
