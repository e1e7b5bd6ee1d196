// ClickHouseClient: statements over ClickHouse's HTTP interface (libcurl),
// for the ClickHouse query backend. One POST per statement: the SQL in the
// body, or for an insert the SQL in the URL and the TSV rows in the body.
// Results come back as TabSeparated text.
//
// Thread-safety: thread-safe (each call uses its own curl handle).
#ifndef COHORTD_SERVER_BACKEND_CLICKHOUSE_CLIENT_H_
#define COHORTD_SERVER_BACKEND_CLICKHOUSE_CLIENT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace cohortd {

struct ClickHouseEndpoint {
  std::string url = "http://127.0.0.1:8123";  // scheme, host, port
  std::string user = "default";
  std::string password;  // the password file's contents, if any
  absl::Duration timeout = absl::Seconds(300);
  // Settings sent with every request as URL parameters ("name=value&..."),
  // e.g. insert_distributed_sync=1 for a Distributed table. "" = none.
  std::string settings;
};

class ClickHouseClient {
 public:
  // Errors: InvalidArgument for a URL that is not http(s)://host:port.
  static absl::StatusOr<std::unique_ptr<ClickHouseClient>> Create(
      ClickHouseEndpoint endpoint);

  // Runs one statement and returns its output (TabSeparated unless the SQL
  // names a format). Errors: Unavailable when the server cannot be reached
  // or times out; Internal with ClickHouse's message for a refused
  // statement (HTTP status >= 400).
  absl::StatusOr<std::string> Execute(absl::string_view sql) const;

  // Runs `insert_sql` ("INSERT INTO t FORMAT TabSeparated") with `rows` as
  // its data. Errors: as Execute.
  absl::Status Insert(absl::string_view insert_sql,
                      absl::string_view rows) const;

  const ClickHouseEndpoint& endpoint() const { return endpoint_; }

 private:
  explicit ClickHouseClient(ClickHouseEndpoint endpoint)
      : endpoint_(std::move(endpoint)) {}
  absl::StatusOr<std::string> Post(const std::string& url,
                                   absl::string_view body) const;

  const ClickHouseEndpoint endpoint_;
};

// TabSeparated helpers. EscapeTsv escapes \, tab, newline, CR and NUL;
// ParseTsv splits output into rows of unescaped fields. QuoteSql makes a
// single-quoted SQL string literal.
std::string EscapeTsv(absl::string_view value);
std::vector<std::vector<std::string>> ParseTsv(absl::string_view text);
std::string QuoteSql(absl::string_view value);

}  // namespace cohortd

#endif  // COHORTD_SERVER_BACKEND_CLICKHOUSE_CLIENT_H_
