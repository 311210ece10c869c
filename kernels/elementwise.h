// Small element-wise helpers used between layers. T is float or double. n elements, contiguous.
#pragma once

#include <cstdint>

namespace moetrain::kernels {

template <typename T> void Fill(T* y, T value, int64_t n);
template <typename T> void Copy(T* y, const T* x, int64_t n);
template <typename T> void Add(T* y, const T* a, const T* b, int64_t n);       // y = a + b
template <typename T> void AddInPlace(T* y, const T* x, int64_t n);            // y += x
template <typename T> void Scale(T* y, T s, int64_t n);                        // y *= s
template <typename T> double SumSquares(const T* x, int64_t n);                // sum x^2 in double
template <typename T> bool AllFinite(const T* x, int64_t n);

}  // namespace moetrain::kernels
