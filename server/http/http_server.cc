#include "server/http/http_server.h"

#include <httplib.h>

#include <algorithm>

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

// Serve answers with body unless the client already holds it (If-None-Match).
void Serve(const httplib::Request& req, httplib::Response& res, const std::string& body,
           const char* content_type, int max_age_seconds) {
  const std::string etag = absl::StrCat("\"", pki::Sha256Hex(body), "\"");
  res.set_header("ETag", etag);
  res.set_header("Cache-Control", absl::StrCat("public, max-age=", max_age_seconds));
  if (req.get_header_value("If-None-Match") == etag) {
    res.status = 304;
    return;
  }
  res.set_content(body, content_type);
}

void Refuse(httplib::Response& res, const absl::Status& st) {
  res.status = HttpStatusFor(st);
  // The status message names the issuer or says to retry; never internals.
  res.set_content(res.status == 500 ? std::string("internal error\n")
                                    : absl::StrCat(st.message(), "\n"),
                  "text/plain");
}

}  // namespace

HttpServer::HttpServer(revocation::CrlPublisher& crls, ca::CertificateAuthority& ca)
    : crls_(crls), ca_(ca), server_(std::make_unique<httplib::Server>()) {
  server_->Get(absl::StrCat("/crl/", kIssuerPattern, "\\.crl"),
               [this](const httplib::Request& req, httplib::Response& res) {
                 auto crl = crls_.Latest(req.matches[1]);
                 if (!crl.ok()) return Refuse(res, crl.status());
                 // Cached at most a minute, and never past the CRL's nextUpdate.
                 const int64_t left = absl::ToInt64Seconds(crl->next_update - absl::Now());
                 Serve(req, res, crl->der, "application/pkix-crl",
                       static_cast<int>(std::clamp<int64_t>(left, 0, 60)));
               });
  server_->Get(absl::StrCat("/ca/", kIssuerPattern, "\\.crt"),
               [this](const httplib::Request& req, httplib::Response& res) {
                 auto issuer = ca_.GetIssuer(req.matches[1]);
                 if (!issuer.ok()) return Refuse(res, issuer.status());
                 if (issuer->certificate_der.empty()) {
                   return Refuse(res, absl::NotFoundError("this issuer has no certificate yet"));
                 }
                 Serve(req, res, issuer->certificate_der, "application/pkix-cert", 3600);
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
