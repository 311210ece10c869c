// Element types and the 16-bit float conversions.
//
// f32/f64 are native; bf16 and f16 are stored as uint16 bit patterns. Conversions from float round to
// nearest, ties to even (what CUDA's __float2bfloat16_rn / __float2half_rn do), keep inf, keep NaN as a
// quiet NaN, and handle f16 subnormals and overflow to inf. Conversions to float are exact.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace moetrain {

// kI8 exists for weight-only int8 export (checkpoint/hf_export.h); no kernel computes in it.
enum class DType : uint8_t { kF32, kF64, kBF16, kF16, kI32, kI64, kI8 };

size_t DTypeSize(DType t);
const char* DTypeName(DType t);              // "f32", "f64", "bf16", "f16", "i32", "i64", "i8"
absl::StatusOr<DType> ParseDType(const std::string& name);

uint16_t FloatToBf16(float f);
float Bf16ToFloat(uint16_t b);
uint16_t FloatToF16(float f);
float F16ToFloat(uint16_t h);

template <typename T>
struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr DType value = DType::kF32; };
template <> struct DTypeOf<double> { static constexpr DType value = DType::kF64; };
template <> struct DTypeOf<int32_t> { static constexpr DType value = DType::kI32; };
template <> struct DTypeOf<int64_t> { static constexpr DType value = DType::kI64; };
template <> struct DTypeOf<int8_t> { static constexpr DType value = DType::kI8; };

}  // namespace moetrain
