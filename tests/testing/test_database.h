#pragma once

// TestDatabase: a fresh PostgreSQL schema for one test, in the server named by
// FLEETCA_TEST_DATABASE_URL (scripts/test.sh starts one and sets it). The schema is dropped
// when the object goes. Tests fail (never skip) when the variable is missing.

#include <memory>
#include <string>

#include "storage/connection_pool.h"

namespace fleetca::testing {

class TestDatabase {
 public:
  // Creates the schema; `migrate` applies the embedded migrations into it.
  explicit TestDatabase(bool migrate = true);
  ~TestDatabase();

  // url connects with search_path set to this test's schema.
  const std::string& url() const { return url_; }
  const std::string& schema() const { return schema_; }
  // pool is a pool on url(), created on first use.
  storage::ConnectionPool& pool();
  // Exec runs SQL (in this schema) and returns the first column of the first row, or "".
  std::string Exec(const std::string& sql);
  // ChainAudit runs the audit sequencer once (fleetca_chain_audit(limit)) and returns how
  // many entries it chained. The sequencer's advisory lock is the database's, shared by the
  // tests running at once in other schemas (an issuance batch holds it to its commit), and
  // the sequencer skips its round when the lock is taken: this retries until it ran, that
  // is until it chained something or nothing is left unchained (at most 30 s).
  int ChainAudit(int limit);

  // BaseUrl returns FLEETCA_TEST_DATABASE_URL (fails the test when unset).
  static std::string BaseUrl();
  // UrlWithSchema adds search_path=schema to a URI.
  static std::string UrlWithSchema(const std::string& base, const std::string& schema);

 private:
  std::string schema_;
  std::string url_;
  std::unique_ptr<storage::ConnectionPool> pool_;
};

}  // namespace fleetca::testing
