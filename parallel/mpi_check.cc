#include "parallel/mpi_check.h"

#include <string>

#include "absl/strings/str_format.h"

namespace moetrain::parallel {

absl::Status MpiStatus(int err, const char* call, const char* file, int line) {
  if (err == MPI_SUCCESS) return absl::OkStatus();
  std::string name(call);
  name = name.substr(0, name.find('('));
  char text[MPI_MAX_ERROR_STRING] = {0};
  int len = 0;
  if (MPI_Error_string(err, text, &len) != MPI_SUCCESS) {
    absl::SNPrintF(text, sizeof(text), "unknown MPI error");
  }
  return absl::InternalError(absl::StrFormat(
      "%s failed at %s:%d: %s (MPI error code %d). HINT: another rank may have failed or exited; "
      "read every rank's log, and check that all ranks call the same collectives in the same order",
      name, file, line, text, err));
}

}  // namespace moetrain::parallel
