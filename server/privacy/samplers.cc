#include "server/privacy/samplers.h"

#include <cmath>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace cohortd::privacy {
namespace {

using u128 = unsigned __int128;

// Internal results: 0 / 1 for a Bernoulli outcome, kRngFailed when the
// randomness failed (the caller reads rng.status()), kTooWide when an event
// of negligible probability needed more width than we carry.
constexpr int kRngFailed = -1;
constexpr int kTooWide = -2;

absl::Status FailureStatus(RandomWords& rng, int code) {
  if (code == kRngFailed) return rng.status();
  return absl::InternalError(
      "sampler: negligible-probability event exceeded fixed-width "
      "arithmetic; no sample produced");
}

// Uniform integer in [0, m), 1 <= m < 2^64: Lemire's multiply-shift with
// rejection ("Fast random integer generation in an interval", 2019), which
// is exactly uniform and costs one word in all but m/2^64 of the cases.
inline bool UniformBelow(RandomWords& rng, uint64_t m, uint64_t* out) {
  uint64_t x;
  if (!rng.Next(&x)) return false;
  u128 p = static_cast<u128>(x) * m;
  uint64_t low = static_cast<uint64_t>(p);
  if (low < m) {
    const uint64_t threshold = (0 - m) % m;  // 2^64 mod m
    while (low < threshold) {
      if (!rng.Next(&x)) return false;
      p = static_cast<u128>(x) * m;
      low = static_cast<uint64_t>(p);
    }
  }
  *out = static_cast<uint64_t>(p >> 64);
  return true;
}

// Unsigned 256-bit integer, just enough for the exact acceptance test of
// the discrete Gaussian: product, comparison, subtraction, uniform below.
struct U256 {
  uint64_t w[4] = {0, 0, 0, 0};  // little-endian words
};

U256 Mul128(u128 a, u128 b) {
  const uint64_t a0 = static_cast<uint64_t>(a), a1 = a >> 64;
  const uint64_t b0 = static_cast<uint64_t>(b), b1 = b >> 64;
  const uint64_t x[2] = {a0, a1};
  const uint64_t y[2] = {b0, b1};
  U256 r;
  for (int i = 0; i < 2; ++i) {
    u128 carry = 0;
    for (int j = 0; j < 2; ++j) {
      const u128 cur = static_cast<u128>(x[i]) * y[j] + r.w[i + j] + carry;
      r.w[i + j] = static_cast<uint64_t>(cur);
      carry = cur >> 64;
    }
    r.w[i + 2] = static_cast<uint64_t>(carry);
  }
  return r;
}

// r * k; returns false on overflow past 2^256.
bool MulSmall(const U256& a, uint64_t k, U256* r) {
  u128 carry = 0;
  for (int i = 0; i < 4; ++i) {
    const u128 cur = static_cast<u128>(a.w[i]) * k + carry;
    r->w[i] = static_cast<uint64_t>(cur);
    carry = cur >> 64;
  }
  return carry == 0;
}

int Compare(const U256& a, const U256& b) {
  for (int i = 3; i >= 0; --i) {
    if (a.w[i] != b.w[i]) return a.w[i] < b.w[i] ? -1 : 1;
  }
  return 0;
}

void SubInPlace(U256& a, const U256& b) {  // requires a >= b
  uint64_t borrow = 0;
  for (int i = 0; i < 4; ++i) {
    const uint64_t bi = b.w[i] + borrow;
    const uint64_t next = (bi < borrow) || (a.w[i] < bi);
    a.w[i] -= bi;
    borrow = next;
  }
}

// Uniform in [0, m), m >= 1, by masking to m's bit length and rejecting
// (exact; expected < 2 tries).
bool UniformBelow256(RandomWords& rng, const U256& m, U256* out) {
  int top = 3;
  while (top > 0 && m.w[top] == 0) --top;
  if (top == 0) return UniformBelow(rng, m.w[0], &out->w[0]);
  const int bits = 64 - __builtin_clzll(m.w[top]);
  const uint64_t mask = bits == 64 ? ~0ULL : ((1ULL << bits) - 1);
  do {
    for (int i = 0; i <= top; ++i) {
      if (!rng.Next(&out->w[i])) return false;
    }
    out->w[top] &= mask;
    for (int i = top + 1; i < 4; ++i) out->w[i] = 0;
  } while (Compare(*out, m) >= 0);
  return true;
}

// Bernoulli(exp(-n/d)) for 0 <= n <= d < 2^32 (CKS20 Algorithm 1, gamma in
// [0,1]): draw A_K ~ Bernoulli(gamma/K) for K = 1, 2, ... until the first
// A_K = 0; the result is 1 iff that K is odd, which happens with
// probability sum_k (-gamma)^k / k! = exp(-gamma).
int BernoulliExpFraction(RandomWords& rng, uint64_t n, uint64_t d) {
  for (uint64_t k = 1;; ++k) {
    // Bernoulli(n / (d k)): d k < 2^64 while k < 2^32; reaching k = 2^32
    // has probability 1/(2^32)!.
    if (k >> 32) return kTooWide;
    uint64_t u;
    if (!UniformBelow(rng, d * k, &u)) return kRngFailed;
    if (u >= n) return static_cast<int>(k & 1);
  }
}

// Bernoulli(exp(-1)), the building block of the geometric part of Alg. 2.
inline int BernoulliExpMinusOne(RandomWords& rng) {
  return BernoulliExpFraction(rng, 1, 1);
}

// Bernoulli(exp(-n/d)) for any n >= 0, d >= 1 in 256 bits (CKS20 Alg. 1):
// exp(-gamma) = exp(-1)^floor(gamma) * exp(-frac(gamma)). floor(gamma) is
// peeled off by subtraction, stopping at the first failed Bernoulli(e^-1),
// so no division is needed and the expected work is O(1).
int BernoulliExpWide(RandomWords& rng, U256 n, const U256& d) {
  while (Compare(n, d) >= 0) {
    SubInPlace(n, d);
    const int b = BernoulliExpMinusOne(rng);
    if (b != 1) return b;
  }
  for (uint64_t k = 1;; ++k) {
    U256 dk, u;
    if (!MulSmall(d, k, &dk)) return kTooWide;
    if (!UniformBelow256(rng, dk, &u)) return kRngFailed;
    if (Compare(u, n) >= 0) return static_cast<int>(k & 1);
  }
}

// General Bernoulli(exp(-n/d)) with n, d < 2^32.
int BernoulliExp(RandomWords& rng, uint64_t n, uint64_t d) {
  for (uint64_t i = n / d; i > 0; --i) {
    const int b = BernoulliExpMinusOne(rng);
    if (b != 1) return b;
  }
  return BernoulliExpFraction(rng, n % d, d);
}

// CKS20 Algorithm 2 with scale t/s; returns false with *code set on
// failure.
bool DiscreteLaplaceImpl(RandomWords& rng, uint64_t t, uint64_t s, int64_t* out,
                         int* code) {
  for (;;) {
    // X = U + t V is geometric on the non-negative integers with
    // P[X = x] proportional to exp(-x/t): U uniform on [0, t) accepted with
    // probability exp(-U/t), V geometric with ratio exp(-1).
    uint64_t u = 0;
    if (t > 1 && !UniformBelow(rng, t, &u)) {
      *code = kRngFailed;
      return false;
    }
    if (u > 0) {
      const int d = BernoulliExpFraction(rng, u, t);
      if (d < 0) {
        *code = d;
        return false;
      }
      if (d == 0) continue;
    }
    uint64_t v = 0;
    for (;;) {
      const int a = BernoulliExpMinusOne(rng);
      if (a < 0) {
        *code = a;
        return false;
      }
      if (a == 0) break;
      // v reaching 2^30 has probability e^{-2^30}.
      if (++v >> 30) {
        *code = kTooWide;
        return false;
      }
    }
    // Y = floor(X / s) is geometric with ratio exp(-s/t); a random sign
    // with the duplicate zero rejected makes it two-sided (CKS20 Alg. 2).
    const uint64_t y = (u + t * v) / s;
    uint64_t sign_word;
    if (!rng.Next(&sign_word)) {
      *code = kRngFailed;
      return false;
    }
    const bool negative = sign_word & 1;
    if (negative && y == 0) continue;
    *out = negative ? -static_cast<int64_t>(y) : static_cast<int64_t>(y);
    return true;
  }
}

uint64_t FloorSqrt(uint64_t x) {
  uint64_t r = static_cast<uint64_t>(std::sqrt(static_cast<double>(x)));
  // Correct the floating-point estimate to the exact integer root.
  while (r > 0 && static_cast<u128>(r) * r > x) --r;
  while (static_cast<u128>(r + 1) * (r + 1) <= x) ++r;
  return r;
}

}  // namespace

absl::StatusOr<bool> SampleBernoulliExp(RandomWords& rng, uint64_t num,
                                        uint64_t den) {
  if (den == 0 || (num >> 32) || (den >> 32)) {
    return absl::InvalidArgumentError(
        "SampleBernoulliExp: need den >= 1 and num, den < 2^32");
  }
  const int b = BernoulliExp(rng, num, den);
  if (b < 0) return FailureStatus(rng, b);
  return b == 1;
}

absl::StatusOr<DiscreteLaplace> DiscreteLaplace::Create(uint64_t t,
                                                        uint64_t s) {
  if (t == 0 || s == 0 || (t >> 32) || (s >> 32)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "DiscreteLaplace: scale %d/%d needs 1 <= t, s < 2^32", t, s));
  }
  return DiscreteLaplace(t, s);
}

absl::StatusOr<int64_t> DiscreteLaplace::Sample(RandomWords& rng) const {
  int64_t out;
  int code;
  if (!DiscreteLaplaceImpl(rng, t_, s_, &out, &code)) {
    return FailureStatus(rng, code);
  }
  return out;
}

absl::StatusOr<DiscreteGaussian> DiscreteGaussian::Create(uint64_t num,
                                                          uint64_t den) {
  if (num == 0 || den == 0 || den > (1ULL << 24)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("DiscreteGaussian: sigma^2 = %d/%d needs num >= 1, "
                        "1 <= den <= 2^24",
                        num, den));
  }
  const uint64_t t = FloorSqrt(num / den) + 1;
  if (t >= (1ULL << 31)) {
    return absl::InvalidArgumentError("DiscreteGaussian: sigma >= 2^31");
  }
  return DiscreteGaussian(num, den, t);
}

absl::StatusOr<DiscreteGaussian> DiscreteGaussian::CreateAtLeast(
    double sigma2) {
  if (!(sigma2 > 0) || !(sigma2 < 4.0e18)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("DiscreteGaussian: bad sigma^2 %g", sigma2));
  }
  // sigma2 * 2^16 is exact in binary floating point; ceil rounds up.
  const uint64_t den = sigma2 < 0x1p40 ? (1ULL << 16) : 1;
  const double scaled = std::ceil(sigma2 * static_cast<double>(den));
  return Create(static_cast<uint64_t>(scaled), den);
}

absl::StatusOr<int64_t> DiscreteGaussian::Sample(RandomWords& rng) const {
  for (;;) {
    // CKS20 Algorithm 3: Y ~ Lap_Z(t) with t = floor(sigma) + 1, accepted
    // with probability exp(-(|Y| - sigma^2/t)^2 / (2 sigma^2)).
    int64_t y;
    int code;
    if (!DiscreteLaplaceImpl(rng, t_, 1, &y, &code)) {
      return FailureStatus(rng, code);
    }
    // With sigma^2 = n/d the exponent is exactly
    //   (|Y| t d - n)^2 / (2 n d t^2).
    // |Y| < 2^63, t < 2^31, d <= 2^24: |Y| t d < 2^118 fits in 128 bits;
    // the square and the denominator (< 2^64 * 2^25 * 2^62) fit in 256.
    const u128 ytd =
        static_cast<u128>(static_cast<uint64_t>(y < 0 ? -y : y)) * t_ * den_;
    const u128 diff = ytd >= num_ ? ytd - num_ : num_ - ytd;
    const U256 numerator = Mul128(diff, diff);
    const U256 denominator =
        Mul128(static_cast<u128>(2) * num_ * den_, static_cast<u128>(t_) * t_);
    const int c = BernoulliExpWide(rng, numerator, denominator);
    if (c < 0) return FailureStatus(rng, c);
    if (c == 1) return y;
  }
}

}  // namespace cohortd::privacy
