// Model FLOPs and the machine's own limit, for MFU.
//
// TrainingFlopsPerToken counts matmul FLOPs only (2 per multiply-add), forward x 3 for training
// (backward = 2 x forward), the convention of the PaLM / Megatron MFU definitions:
//   per layer:  attention projections 2 C (Hq D + 2 Hkv D + Hq D)
//               causal attention scores + values  2 * 2 Hq D * (S+1)/2   (average context)
//               MoE: router 2 C E + k * 6 C F + shared 6 C Fs; dense layers 6 C I
//   LM head 2 C V.  Embedding lookups, norms and element-wise ops are not counted.
// MeasureSgemmPeakFlops times kernels::Matmul (sgemm) on n x n x n (median of `reps`) with the
// current thread setting — after SetNumThreads that is our OpenMP-split sgemm, which matches
// OpenBLAS's own threaded sgemm: MFU = achieved model FLOPs/s / that peak.
#pragma once

#include <cstdint>

#include "model/config.h"

namespace moetrain::trainer {

double ForwardFlopsPerToken(const model::ModelConfig& c, int64_t seq);
inline double TrainingFlopsPerToken(const model::ModelConfig& c, int64_t seq) {
  return 3.0 * ForwardFlopsPerToken(c, seq);
}
double MeasureSgemmPeakFlops(int n = 1024, int reps = 5);

}  // namespace moetrain::trainer
