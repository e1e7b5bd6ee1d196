#include "server/crypto/pseudonymizer.h"

// SHA256_Init/Update/Final are deprecated in OpenSSL 3 in favour of EVP,
// but they are the only way to copy a hash state without an allocation,
// and they run the same (SHA-NI / AVX2) block function as EVP's SHA-256.
#define OPENSSL_SUPPRESS_DEPRECATED

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "server/common/check.h"
#include "server/common/file_sync.h"
#include "server/common/status_macros.h"

namespace cohortd {
namespace {

absl::Status ErrnoError(int errno_value, absl::string_view what,
                        const std::string& path) {
  return absl::ErrnoToStatus(errno_value, absl::StrFormat("%s %s", what, path));
}

// Closes a file descriptor when it goes out of scope.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() {
    if (fd_ >= 0) close(fd_);
  }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;

 private:
  int fd_;
};

absl::StatusOr<std::string> ReadKeyFile(const std::string& path, int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return ErrnoError(errno, "cannot stat", path);
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "pseudonymization key file %s is not a regular file", path));
  }
  // The key is what keeps pseudonyms unlinkable to account ids; a key
  // others can read is as good as no key, so refuse rather than warn.
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "pseudonymization key file %s has mode %04o: it must not be "
        "accessible to group or others; fix with `chmod 600 %s`",
        path, st.st_mode & 07777, path));
  }
  if (st.st_size != static_cast<off_t>(kPseudonymizationKeySize)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "pseudonymization key file %s has %d bytes, expected %d; restore it "
        "from backup (stored pseudonyms depend on it), or delete it only if "
        "no data was ever stored with it, and a new key will be created",
        path, static_cast<int64_t>(st.st_size), kPseudonymizationKeySize));
  }
  std::string key(kPseudonymizationKeySize, '\0');
  size_t done = 0;
  while (done < key.size()) {
    ssize_t n = read(fd, &key[done], key.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(errno, "cannot read", path);
    if (n == 0) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "pseudonymization key file %s shrank while being read", path));
    }
    done += static_cast<size_t>(n);
  }
  return key;
}

// Creates the key file; returns AlreadyExists if another process won the
// race to create it.
absl::Status CreateKeyFile(const std::string& path) {
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (parent.empty()) parent = ".";
  std::error_code ec;
  std::filesystem::create_directories(parent, ec);
  if (ec) return ErrnoError(ec.value(), "cannot create directory", parent);

  std::string key(kPseudonymizationKeySize, '\0');
  if (RAND_priv_bytes(reinterpret_cast<unsigned char*>(key.data()),
                      static_cast<int>(key.size())) != 1) {
    return absl::InternalError("RAND_priv_bytes failed");
  }
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return absl::AlreadyExistsError(path);
    return ErrnoError(errno, "cannot create", path);
  }
  FdCloser closer(fd);
  size_t done = 0;
  while (done < key.size()) {
    ssize_t n = write(fd, key.data() + done, key.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(errno, "cannot write", path);
    done += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) return ErrnoError(errno, "cannot fsync", path);
  return SyncDirectory(parent.string());
}

}  // namespace

struct HmacSha256::PadStates {
  SHA256_CTX inner;  // after (K' xor ipad)
  SHA256_CTX outer;  // after (K' xor opad)
  ~PadStates() { OPENSSL_cleanse(this, sizeof *this); }
};

HmacSha256::HmacSha256(std::unique_ptr<PadStates> states)
    : states_(std::move(states)) {}

HmacSha256::~HmacSha256() = default;

absl::StatusOr<std::unique_ptr<HmacSha256>> HmacSha256::Create(
    absl::string_view key) {
  if (key.empty()) return absl::InvalidArgumentError("empty HMAC key");
  // RFC 2104 section 2: K' is the key hashed when longer than the block
  // size B = 64, then zero-padded to B; HMAC(K, m) = H((K' xor opad) ||
  // H((K' xor ipad) || m)) with ipad = 0x36.., opad = 0x5c...
  constexpr size_t kBlock = SHA256_CBLOCK;
  unsigned char padded[kBlock] = {};
  if (key.size() > kBlock) {
    const Digest256 hashed = Sha256(key);
    std::memcpy(padded, hashed.data(), hashed.size());
  } else {
    std::memcpy(padded, key.data(), key.size());
  }
  auto states = std::make_unique<PadStates>();
  unsigned char pad[kBlock];
  for (size_t i = 0; i < kBlock; ++i) pad[i] = padded[i] ^ 0x36;
  bool ok = SHA256_Init(&states->inner) == 1 &&
            SHA256_Update(&states->inner, pad, kBlock) == 1;
  for (size_t i = 0; i < kBlock; ++i) pad[i] = padded[i] ^ 0x5c;
  ok = ok && SHA256_Init(&states->outer) == 1 &&
       SHA256_Update(&states->outer, pad, kBlock) == 1;
  OPENSSL_cleanse(padded, sizeof padded);
  OPENSSL_cleanse(pad, sizeof pad);
  if (!ok) return absl::InternalError("SHA256_Init/Update failed");
  return std::unique_ptr<HmacSha256>(new HmacSha256(std::move(states)));
}

Digest256 HmacSha256::Mac(absl::string_view message) const {
  SHA256_CTX ctx = states_->inner;
  unsigned char inner[SHA256_DIGEST_LENGTH];
  bool ok = SHA256_Update(&ctx, message.data(), message.size()) == 1 &&
            SHA256_Final(inner, &ctx) == 1;
  ctx = states_->outer;
  Digest256 out;
  ok = ok && SHA256_Update(&ctx, inner, sizeof inner) == 1 &&
       SHA256_Final(out.data(), &ctx) == 1;
  OPENSSL_cleanse(&ctx, sizeof ctx);
  CHECK(ok);
  return out;
}

absl::StatusOr<std::unique_ptr<Pseudonymizer>> Pseudonymizer::Create(
    absl::string_view key) {
  if (key.size() != kPseudonymizationKeySize) {
    return absl::InvalidArgumentError(
        absl::StrFormat("pseudonymization key has %d bytes, expected %d",
                        key.size(), kPseudonymizationKeySize));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<HmacSha256> hmac, HmacSha256::Create(key));
  return std::unique_ptr<Pseudonymizer>(new Pseudonymizer(std::move(hmac)));
}

absl::StatusOr<std::string> LoadOrCreateKeyFile(const std::string& path) {
  // At most two rounds: if creation loses a race, the file now exists.
  for (int attempt = 0; attempt < 2; ++attempt) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      FdCloser closer(fd);
      return ReadKeyFile(path, fd);
    }
    if (errno != ENOENT) return ErrnoError(errno, "cannot open", path);
    absl::Status created = CreateKeyFile(path);
    if (!created.ok() && !absl::IsAlreadyExists(created)) return created;
  }
  return absl::InternalError(
      absl::StrFormat("pseudonymization key file %s keeps disappearing", path));
}

Digest256 Sha256(absl::string_view data) {
  Digest256 out;
  unsigned int out_len = 0;
  CHECK(EVP_Digest(data.data(), data.size(), out.data(), &out_len, EVP_sha256(),
                   nullptr) == 1);
  CHECK(out_len == out.size());
  return out;
}

std::string HexEncode(absl::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    hex.push_back(kDigits[c >> 4]);
    hex.push_back(kDigits[c & 0xf]);
  }
  return hex;
}

std::string HexEncode(const Digest256& digest) {
  return HexEncode(absl::string_view(
      reinterpret_cast<const char*>(digest.data()), digest.size()));
}

bool ParseHexDigest256(absl::string_view hex, Digest256* out) {
  if (hex.size() != 2 * out->size()) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < out->size(); ++i) {
    int hi = nibble(hex[2 * i]);
    int lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    (*out)[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

}  // namespace cohortd
