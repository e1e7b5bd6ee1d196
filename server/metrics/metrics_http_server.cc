#include "server/metrics/metrics_http_server.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "civetweb.h"

namespace cohortd {
namespace {

// Writes a whole response with `Connection: close` (keep-alive is off), so
// one request never holds a worker thread after it is answered.
void Respond(mg_connection* connection, int code, absl::string_view reason,
             absl::string_view extra_headers, absl::string_view body,
             bool head_only) {
  const std::string header = absl::StrCat(
      "HTTP/1.1 ", code, " ", reason, "\r\n", extra_headers,
      "Content-Length: ", body.size(), "\r\nConnection: close\r\n\r\n");
  mg_write(connection, header.data(), header.size());
  if (!head_only) mg_write(connection, body.data(), body.size());
}

// The host to connect to for waking a server bound to `listen_address`: a
// wildcard address is reached through loopback.
std::string WakeHost(const std::string& listen_address) {
  std::string host = listen_address.substr(0, listen_address.rfind(':'));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty() || host == "0.0.0.0") return "127.0.0.1";
  if (host == "::") return "::1";
  return host;
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const PrometheusMetrics* metrics, Options options) {
  static std::once_flag library;
  std::call_once(library, [] { mg_init_library(0); });

  std::unique_ptr<MetricsHttpServer> server(
      new MetricsHttpServer(metrics, std::move(options)));
  // Two workers: scrapes are rare and cheap. A client that connects and
  // sends nothing holds a worker for at most request_timeout_ms.
  const char* civet_options[] = {"listening_ports",
                                 server->options_.listen_address.c_str(),
                                 "num_threads",
                                 "2",
                                 "request_timeout_ms",
                                 "5000",
                                 "enable_keep_alive",
                                 "no",
                                 nullptr};
  char error_text[256] = "";
  unsigned error_code = 0;
  mg_error_data error{&error_code, error_text, sizeof(error_text)};
  mg_callbacks callbacks{};
  // civetweb prints failures to stderr unless a log callback takes them;
  // they are returned below instead.
  callbacks.log_message = [](const mg_connection*, const char*) { return 1; };
  mg_init_data init{&callbacks, nullptr, civet_options};
  server->context_ = mg_start2(&init, &error);
  if (server->context_ == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on ",
                                               server->options_.listen_address,
                                               ": ", error_text));
  }
  mg_server_port ports[4];
  const int n = mg_get_server_ports(server->context_, 4, ports);
  if (n < 1) {
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on ",
                                               server->options_.listen_address,
                                               ": no port bound"));
  }
  server->port_ = ports[0].port;
  mg_set_request_handler(server->context_, "/metrics",
                         &MetricsHttpServer::HandleRequest, server.get());
  return server;
}

MetricsHttpServer::~MetricsHttpServer() { Stop(); }

int MetricsHttpServer::HandleRequest(mg_connection* connection, void* self) {
  return static_cast<const MetricsHttpServer*>(self)->Handle(connection);
}

int MetricsHttpServer::Handle(mg_connection* connection) const {
  const mg_request_info* info = mg_get_request_info(connection);
  if (info->local_uri == nullptr ||
      std::strcmp(info->local_uri, "/metrics") != 0) {
    Respond(connection, 404, "Not Found", "", "not found\n", false);
    return 404;
  }
  const bool head = std::strcmp(info->request_method, "HEAD") == 0;
  if (!head && std::strcmp(info->request_method, "GET") != 0) {
    Respond(connection, 405, "Method Not Allowed", "Allow: GET, HEAD\r\n",
            "only GET and HEAD are served\n", false);
    return 405;
  }
  if (options_.authorize) {
    const char* header = mg_get_header(connection, "Authorization");
    const absl::Status allowed =
        options_.authorize(header == nullptr ? "" : header);
    if (!allowed.ok()) {
      const std::string body = absl::StrCat(allowed.message(), "\n");
      if (absl::IsUnauthenticated(allowed)) {
        Respond(connection, 401, "Unauthorized",
                "WWW-Authenticate: Bearer realm=\"cohortd\"\r\n"
                "Content-Type: text/plain; charset=utf-8\r\n",
                body, head);
        return 401;
      }
      if (absl::IsPermissionDenied(allowed)) {
        Respond(connection, 403, "Forbidden",
                "Content-Type: text/plain; charset=utf-8\r\n", body, head);
        return 403;
      }
      Respond(connection, 500, "Internal Server Error",
              "Content-Type: text/plain; charset=utf-8\r\n", body, head);
      return 500;
    }
  }
  Respond(connection, 200, "OK",
          "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n",
          metrics_->Exposition(), head);
  return 200;
}

void MetricsHttpServer::Wake() const {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string host = WakeHost(options_.listen_address);
  const std::string port = std::to_string(port_);
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0) return;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd =
        socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    const bool connected = connect(fd, a->ai_addr, a->ai_addrlen) == 0;
    close(fd);
    if (connected) break;
  }
  freeaddrinfo(found);
}

void MetricsHttpServer::Stop() {
  if (context_ == nullptr) return;
  // mg_stop raises civetweb's stop flag and waits for the accept loop,
  // which polls the listening socket in 2 s quanta and checks the flag only
  // between polls. A connection wakes it; the waker repeats until mg_stop
  // returns because the flag may be raised after a given connection.
  std::atomic<bool> stopped{false};
  std::thread waker([this, &stopped] {
    while (!stopped.load()) {
      Wake();
      absl::SleepFor(absl::Milliseconds(10));
    }
  });
  mg_stop(context_);
  stopped.store(true);
  waker.join();
  context_ = nullptr;
}

}  // namespace cohortd
