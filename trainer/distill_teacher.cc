#include "trainer/distill_teacher.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "checkpoint/snapshot_param_source.h"
#include "checkpoint/snapshot_reader.h"
#include "model/load_params.h"
#include "trainer/train_snapshot.h"
#include "core/status.h"
#include "trainer/recipe.h"

namespace moetrain::trainer {

absl::StatusOr<std::unique_ptr<DistillTeacher>> DistillTeacher::Load(
    const std::string& snapshot_dir, const std::string& tokenizer_checksum, int64_t student_vocab,
    int64_t batch, int64_t seq, int num_threads, const model::ModelParallel& parallel) {
  ASSIGN_OR_RETURN(checkpoint::SnapshotReader reader,
                   checkpoint::SnapshotReader::Open(snapshot_dir));
  RETURN_IF_ERROR(reader.Verify());
  const nlohmann::json& meta = reader.meta();
  if (!meta.contains("state") || !meta["state"].contains("recipe") ||
      !meta["state"]["recipe"].is_string())
    return absl::FailedPreconditionError(
        absl::StrCat(snapshot_dir,
                     "/meta.json: distill.teacher: no state.recipe (the teacher's model config); "
                     "the teacher must be a snapshot written by `moetrain train`"));
  const nlohmann::json& state = meta["state"];
  if (!state.contains("tokenizer_checksum"))
    return absl::FailedPreconditionError(
        absl::StrCat(snapshot_dir,
                     "/meta.json: distill.teacher: no state.tokenizer_checksum, so the teacher's "
                     "tokenizer cannot be checked against the student's"));
  if (state["tokenizer_checksum"] != tokenizer_checksum)
    return absl::FailedPreconditionError(absl::StrCat(
        snapshot_dir, ": distill.teacher was trained with another tokenizer (checksum ",
        state["tokenizer_checksum"].dump(), ", the student's is \"", tokenizer_checksum,
        "\"); teacher and student must share one tokenizer"));
  ASSIGN_OR_RETURN(Recipe teacher_recipe,
                   ParseRecipe(state["recipe"].get<std::string>(),
                               absl::StrCat(snapshot_dir, "/meta.json (state.recipe)")));
  model::ModelConfig config = teacher_recipe.model;
  if (teacher_recipe.vocab_size_auto) config.vocab_size = student_vocab;
  if (config.vocab_size != student_vocab)
    return absl::FailedPreconditionError(absl::StrCat(
        snapshot_dir, ": distill.teacher has vocab_size ", config.vocab_size, ", the student ",
        student_vocab, "; teacher and student must share one vocabulary"));
  if (parallel.tp != nullptr && parallel.tp->size() > 1)
    return absl::InvalidArgumentError(
        absl::StrCat(snapshot_dir,
                     ": distill.teacher: tensor parallelism (tp > 1) is not supported "
                     "for distillation"));

  model::ModelParallel mp = parallel;
  mp.zero_stage = 0;  // the whole share resident: no hooks, nothing gathered or scattered
  auto t = std::unique_ptr<DistillTeacher>(new DistillTeacher());
  t->dir_ = snapshot_dir;
  {
    absl::StatusOr<std::unique_ptr<model::Model<float>>> m =
        model::Model<float>::Create(config, batch, seq, num_threads, mp);
    if (!m.ok())
      return absl::Status(
          m.status().code(),
          absl::StrCat(snapshot_dir, ": distill.teacher model: ", m.status().message()));
    t->model_ = std::move(m).value();
  }

  // The table must match the snapshot's (every mismatch listed, nothing read); then a read-only
  // load of every held tensor through the resharding reader.
  RETURN_IF_ERROR(CheckSnapshotTable(reader, t->model_->table(), "distill.teacher's own recipe"));
  checkpoint::SnapshotParamSource source(reader);
  RETURN_IF_ERROR(model::LoadParams(source, t->model_.get()));
  return t;
}

uint64_t DistillTeacher::WeightsFingerprint() const {
  uint64_t h = 1469598103934665603ull;
  for (const model::ParamSpec& s : model_->table().specs()) {
    if (!model_->Holds(s.name)) continue;
    const TensorView v = model_->Param(s.name);
    const auto* bytes = static_cast<const unsigned char*>(v.data());
    for (size_t i = 0; i < v.nbytes(); ++i) h = (h ^ bytes[i]) * 1099511628211ull;
  }
  return h;
}

}  // namespace moetrain::trainer
