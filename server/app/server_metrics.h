#pragma once

// The server's metrics read at scrape time from the components that keep them: the
// PostgreSQL pool, the CRLs served, the brokers' sync streams, the policy index, and the
// certificates expiring soon. Counters updated where things happen live elsewhere
// (api::RpcObserverFactory, api::ServiceMetrics, http::HttpServer).

#include "common/metrics.h"
#include "server/api/sync_feed.h"
#include "server/policy/index.h"
#include "server/revocation/crl_publisher.h"
#include "storage/connection_pool.h"
#include "storage/pg_certificate_store.h"

namespace fleetca::app {

struct MetricSources {
  storage::ConnectionPool* pool;
  revocation::CrlPublisher* crls;
  api::StreamTracker* streams;
  api::SyncFeed* feed;
  policy::PolicyIndex* policy_index;
  storage::PgCertificateStore* certificates;
};

// RegisterServerMetrics adds the callbacks to registry; the sources must outlive it.
void RegisterServerMetrics(metrics::Registry& registry, const MetricSources& sources);

}  // namespace fleetca::app
