#include "core/dtype.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace moetrain {

size_t DTypeSize(DType t) {
  switch (t) {
    case DType::kF32: return 4;
    case DType::kF64: return 8;
    case DType::kBF16: return 2;
    case DType::kF16: return 2;
    case DType::kI32: return 4;
    case DType::kI64: return 8;
    case DType::kI8: return 1;
  }
  return 0;
}

const char* DTypeName(DType t) {
  switch (t) {
    case DType::kF32: return "f32";
    case DType::kF64: return "f64";
    case DType::kBF16: return "bf16";
    case DType::kF16: return "f16";
    case DType::kI32: return "i32";
    case DType::kI64: return "i64";
    case DType::kI8: return "i8";
  }
  return "?";
}

absl::StatusOr<DType> ParseDType(const std::string& name) {
  if (name == "f32" || name == "fp32" || name == "float32") return DType::kF32;
  if (name == "f64" || name == "fp64" || name == "float64") return DType::kF64;
  if (name == "bf16" || name == "bfloat16") return DType::kBF16;
  if (name == "f16" || name == "fp16" || name == "float16") return DType::kF16;
  if (name == "i32" || name == "int32") return DType::kI32;
  if (name == "i64" || name == "int64") return DType::kI64;
  if (name == "i8" || name == "int8") return DType::kI8;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown dtype '", name, "' (expected one of f32, f64, bf16, f16, i32, i64, i8)"));
}

static uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
static float FromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t FloatToBf16(float f) {
  uint32_t u = Bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  // Round to nearest even: add 0x7fff plus the lowest kept bit, then truncate. Overflow carries into
  // the exponent and correctly produces inf.
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

float Bf16ToFloat(uint16_t b) { return FromBits(static_cast<uint32_t>(b) << 16); }

uint16_t FloatToF16(float f) {
  uint32_t u = Bits(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  u &= 0x7fffffffu;
  if (u > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN -> quiet NaN
  if (u >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520 rounds to inf
  if (u < 0x38800000u) {
    // Result is subnormal (or zero) in f16: value = m * 2^-24 with m an integer < 1024.
    // Scale so the f16 subnormal ulp becomes 1 and let the FPU's round-to-nearest-even do the work:
    // adding 0.5f (2^-1) to a number < 2^-14... instead use the classic magic-number trick.
    const float magic = FromBits(0x3f000000u);  // 0.5: forces alignment so ulp(2^-1 + x) = 2^-24
    float r = FromBits(u) + magic;               // exact RNE at 2^-24 granularity
    return static_cast<uint16_t>(sign | (Bits(r) - Bits(magic)));
  }
  // Normal: rebias exponent (127 -> 15) and round the 13 dropped mantissa bits to nearest even.
  uint32_t mant_odd = (u >> 13) & 1u;
  u += (static_cast<uint32_t>(15 - 127) << 23) + 0xfffu + mant_odd;
  return static_cast<uint16_t>(sign | (u >> 13));
}

float F16ToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    // zero or subnormal: mant * 2^-24, exact in float.
    float v = static_cast<float>(mant) * FromBits(0x33800000u);  // 2^-24
    return FromBits(Bits(v) | sign);
  }
  if (exp == 31) return FromBits(sign | 0x7f800000u | (mant << 13));
  return FromBits(sign | ((exp + 127 - 15) << 23) | (mant << 13));
}

}  // namespace moetrain
