#include "server/backend/clickhouse_client.h"

#include <curl/curl.h>

#include <mutex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace cohortd {
namespace {

size_t Collect(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

absl::StatusOr<std::unique_ptr<ClickHouseClient>> ClickHouseClient::Create(
    ClickHouseEndpoint endpoint) {
  if (!absl::StartsWith(endpoint.url, "http://") &&
      !absl::StartsWith(endpoint.url, "https://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("storage.clickhouse.url: '", endpoint.url,
                     "' is not an http:// or https:// URL"));
  }
  while (absl::EndsWith(endpoint.url, "/")) endpoint.url.pop_back();
  GlobalInit();
  return std::unique_ptr<ClickHouseClient>(
      new ClickHouseClient(std::move(endpoint)));
}

absl::StatusOr<std::string> ClickHouseClient::Post(
    const std::string& url, absl::string_view body) const {
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return absl::InternalError("curl_easy_init failed");
  std::string response;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_POST, 1L);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                   static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(
      curl, CURLOPT_TIMEOUT_MS,
      static_cast<long>(absl::ToInt64Milliseconds(endpoint_.timeout)));
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
  curl_slist* headers = nullptr;
  const std::string user = absl::StrCat("X-ClickHouse-User: ", endpoint_.user);
  const std::string key =
      absl::StrCat("X-ClickHouse-Key: ", endpoint_.password);
  headers = curl_slist_append(headers, user.c_str());
  if (!endpoint_.password.empty()) {
    headers = curl_slist_append(headers, key.c_str());
  }
  // No "Expect: 100-continue" round trip for large inserts.
  headers = curl_slist_append(headers, "Expect:");
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  const CURLcode rc = curl_easy_perform(curl);
  long http = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &http);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) {
    return absl::UnavailableError(absl::StrCat("clickhouse ", endpoint_.url,
                                               ": ", curl_easy_strerror(rc)));
  }
  if (http >= 400) {
    return absl::InternalError(absl::StrCat("clickhouse ", endpoint_.url,
                                            " refused (HTTP ", http,
                                            "): ", response.substr(0, 2000)));
  }
  return response;
}

absl::StatusOr<std::string> ClickHouseClient::Execute(
    absl::string_view sql) const {
  return Post(endpoint_.settings.empty()
                  ? absl::StrCat(endpoint_.url, "/")
                  : absl::StrCat(endpoint_.url, "/?", endpoint_.settings),
              sql);
}

absl::Status ClickHouseClient::Insert(absl::string_view insert_sql,
                                      absl::string_view rows) const {
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return absl::InternalError("curl_easy_init failed");
  char* escaped = curl_easy_escape(curl, insert_sql.data(),
                                   static_cast<int>(insert_sql.size()));
  std::string url = absl::StrCat(endpoint_.url, "/?query=", escaped);
  if (!endpoint_.settings.empty())
    absl::StrAppend(&url, "&", endpoint_.settings);
  curl_free(escaped);
  curl_easy_cleanup(curl);
  return Post(url, rows).status();
}

std::string EscapeTsv(absl::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\0':
        out += "\\0";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::vector<std::vector<std::string>> ParseTsv(absl::string_view text) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool any = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    any = true;
    if (c == '\t') {
      row.push_back(std::move(field));
      field.clear();
    } else if (c == '\n') {
      row.push_back(std::move(field));
      field.clear();
      rows.push_back(std::move(row));
      row.clear();
      any = false;
    } else if (c == '\\' && i + 1 < text.size()) {
      const char e = text[++i];
      switch (e) {
        case 't':
          field += '\t';
          break;
        case 'n':
          field += '\n';
          break;
        case 'r':
          field += '\r';
          break;
        case '0':
          field += '\0';
          break;
        case 'b':
          field += '\b';
          break;
        case 'f':
          field += '\f';
          break;
        default:
          field += e;  // \\ \' and any other escaped byte
      }
    } else {
      field += c;
    }
  }
  if (any) {
    row.push_back(std::move(field));
    rows.push_back(std::move(row));
  }
  return rows;
}

std::string QuoteSql(absl::string_view value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\\' || c == '\'') out += '\\';
    if (c == '\0') {
      out += "\\0";
      continue;
    }
    out += c;
  }
  out += "'";
  return out;
}

}  // namespace cohortd
