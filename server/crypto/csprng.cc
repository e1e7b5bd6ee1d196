#include "server/crypto/csprng.h"

#include <openssl/err.h>
#include <openssl/rand.h>

#include <limits>

#include "absl/strings/str_cat.h"

namespace cohortd {
namespace {

class OpenSslSource final : public RandomSource {
 public:
  absl::Status Fill(uint64_t* words, size_t count) override {
    const size_t bytes = count * sizeof(uint64_t);
    if (bytes > static_cast<size_t>(std::numeric_limits<int>::max())) {
      return absl::InvalidArgumentError("csprng: request too large");
    }
    // RAND_priv_bytes returns 1 on success; anything else means the DRBG
    // could not be (re)seeded, and we must not produce noise at all.
    if (RAND_priv_bytes(reinterpret_cast<unsigned char*>(words),
                        static_cast<int>(bytes)) != 1) {
      char reason[256];  // ERR_error_string(.., nullptr) is not thread-safe
      ERR_error_string_n(ERR_get_error(), reason, sizeof(reason));
      return absl::InternalError(
          absl::StrCat("csprng: RAND_priv_bytes failed: ", reason));
    }
    return absl::OkStatus();
  }
};

}  // namespace

RandomSource& OpenSslRandomSource() {
  static OpenSslSource* const source = new OpenSslSource();
  return *source;
}

bool RandomWords::Refill() {
  if (!status_.ok()) return false;
  status_ = source_->Fill(buffer_, kBufferWords);
  if (!status_.ok()) {
    size_ = pos_ = 0;
    return false;
  }
  size_ = kBufferWords;
  pos_ = 0;
  return true;
}

RandomWords& SecureRandomWords() {
  thread_local RandomWords words(&OpenSslRandomSource());
  return words;
}

}  // namespace cohortd
