// MetricsHttpServer: serves one PrometheusMetrics registry at GET /metrics
// on an address of its own, over plain HTTP (civetweb), optionally behind
// a bearer-token check. cohortd runs two of them (metrics.h, "Two
// endpoints"): the dashboards' metrics_listen, open to anyone who can reach
// it, and operator_metrics_listen, whose scrapes must carry an admin token
// when it is not on loopback.
//
// Unlike prometheus-cpp's Exposer it adds no series of its own (scrape
// counts, transfer sizes and latencies would change between two scrapes of
// an unchanged registry), checks bearer tokens, and stops within
// milliseconds instead of civetweb's 2 s poll quantum.
#ifndef COHORTD_SERVER_METRICS_METRICS_HTTP_SERVER_H_
#define COHORTD_SERVER_METRICS_METRICS_HTTP_SERVER_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/metrics/prometheus_metrics.h"

struct mg_connection;
struct mg_context;

namespace cohortd {

class MetricsHttpServer {
 public:
  // Decides whether a request may read the series. Called with the
  // request's `Authorization` header ("" when absent), on a server thread,
  // concurrently: it must be thread-safe. OK serves the scrape;
  // Unauthenticated answers 401 (with `WWW-Authenticate: Bearer`);
  // PermissionDenied 403; any other error 500. The body of a refusal is the
  // status message, which must not echo the token.
  using Authorizer =
      std::function<absl::Status(absl::string_view authorization)>;

  struct Options {
    // "host:port" (IPv6 as "[::1]:port"); port 0 picks a free port.
    std::string listen_address;
    // Empty: every request is served.
    Authorizer authorize;
  };

  // Starts serving `metrics` (borrowed; must outlive this server) at
  // /metrics. GET and HEAD only (405 otherwise); other paths are 404.
  // Errors: Unavailable when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const PrometheusMetrics* metrics, Options options);

  // Stops (as Stop) if still serving.
  ~MetricsHttpServer();
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  // The port actually bound.
  int port() const { return port_; }

  // Closes the listening socket and waits for requests in progress to
  // finish; returns within milliseconds when none is in progress.
  // Idempotent. Not to be called concurrently with itself.
  void Stop();

 private:
  MetricsHttpServer(const PrometheusMetrics* metrics, Options options)
      : metrics_(metrics), options_(std::move(options)) {}
  static int HandleRequest(mg_connection* connection, void* self);
  int Handle(mg_connection* connection) const;
  // Connects to the listening socket and closes at once, so civetweb's
  // accept loop wakes up and sees that it must stop.
  void Wake() const;

  const PrometheusMetrics* const metrics_;
  const Options options_;
  mg_context* context_ = nullptr;
  int port_ = 0;
};

}  // namespace cohortd

#endif  // COHORTD_SERVER_METRICS_METRICS_HTTP_SERVER_H_
