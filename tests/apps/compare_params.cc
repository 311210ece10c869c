// compare_params RTOL REF.safetensors DIR...: every tensor in DIR/rank*.safetensors must exist in
// REF and match it (per-tensor relative L2 error <= RTOL), and together the ranks of each DIR must
// hold every tensor of REF. Replicas (the same tensor on several ranks) are each compared.
// Exit 0 on success; prints the worst error per DIR.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "checkpoint/safetensors.h"

using moetrain::checkpoint::SafetensorsFile;

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: compare_params RTOL REF.safetensors DIR...\n");
    return 2;
  }
  const double rtol = std::atof(argv[1]);
  auto ref = SafetensorsFile::Open(argv[2]);
  if (!ref.ok()) {
    std::fprintf(stderr, "%s\n", ref.status().ToString().c_str());
    return 2;
  }
  int bad = 0;
  for (int a = 3; a < argc; ++a) {
    std::set<std::string> seen;
    double worst = 0;
    std::string worst_name;
    for (const auto& entry : std::filesystem::directory_iterator(argv[a])) {
      if (entry.path().extension() != ".safetensors") continue;
      auto f = SafetensorsFile::Open(entry.path().string());
      if (!f.ok()) {
        std::fprintf(stderr, "%s\n", f.status().ToString().c_str());
        return 2;
      }
      for (const std::string& name : f->Names()) {
        if (!ref->Has(name)) {
          std::fprintf(stderr, "%s: %s not in the reference\n", entry.path().c_str(), name.c_str());
          ++bad;
          continue;
        }
        seen.insert(name);
        auto x = f->ReadAsDouble(name);
        auto y = ref->ReadAsDouble(name);
        if (!x.ok() || !y.ok() || x->size() != y->size()) {
          std::fprintf(stderr, "%s: %s unreadable or wrong size\n", entry.path().c_str(), name.c_str());
          ++bad;
          continue;
        }
        double num = 0, den = 0;
        for (size_t i = 0; i < x->size(); ++i) {
          num += ((*x)[i] - (*y)[i]) * ((*x)[i] - (*y)[i]);
          den += (*y)[i] * (*y)[i];
        }
        const double rel = std::sqrt(num / std::max(den, 1e-300));
        if (rel > worst) worst = rel, worst_name = name;
      }
    }
    const size_t missing = ref->Names().size() - seen.size();
    std::printf("%s: %zu tensors, worst relative error %.3g (%s), %zu missing\n", argv[a],
                seen.size(), worst, worst_name.c_str(), missing);
    if (worst > rtol || missing > 0) ++bad;
  }
  return bad == 0 ? 0 : 1;
}
