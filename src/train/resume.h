// What a run saves in trainer_state.json and how --resume reads it back: the position, the
// settings the command line may leave out, the run's length and its learning-rate schedule.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "convnext/tensor.h"
#include "train/optimizer.h"
#include "train/trainer.h"

namespace convnext::train {

struct Position {
  int64_t step = 0, epoch = 0, batch = 0;  // optimizer steps taken; where the next batch comes from
};

// trainer_state.json in `dir`: the position, the schedule and every setting --resume restores.
void write_trainer_state(const std::string& dir, const Position& pos, const LrSchedule& schedule, const TrainOptions& o);

struct Resumed {
  nlohmann::json state;     // trainer_state.json
  Position pos;
  nlohmann::json restored;  // the settings taken from the run: key -> value
};

// Reads the run in o.resume_dir and gives `o` every saved setting the command line did not give.
Resumed read_resumed(TrainOptions& o);

// The run's length in optimizer steps: --steps, --epochs, the resumed run's, else the Trainer's 3 epochs.
int64_t run_length(const TrainOptions& o, Resumed* r, int64_t steps_per_epoch);

// The schedule of this run; resumed, continued from the saved one without the rate jumping up.
LrSchedule run_schedule(const TrainOptions& o, const Resumed* r, int64_t total_steps);

// {"from", "step", "restored"}: the "resumed" member of the --json summary.
nlohmann::json resumed_json(const TrainOptions& o, const Resumed& r);

// The optimizer moments saved beside the checkpoint in `dir` (optimizer.safetensors).
std::vector<std::pair<std::string, Tensor>> read_optimizer_state(const std::string& dir);

// "resuming DIR at step 120 of 1500, restored from the run: data=/x, batch_size=4, ..."
void print_resuming(const TrainOptions& o, const Resumed& r, int64_t total_steps);

// A warning when batch size, accumulation or seed differ from the run's: the steps then differ too.
void warn_if_steps_differ(const TrainOptions& o, const Resumed& r);

// Resuming a run that already has its length: say so, write nothing, succeed (returns 0).
// A run resumes on the number of ranks it was trained on (trainer_state.json's world_size, 1 when
// absent); another is an Error saying which.
void check_world_size(const Resumed& r, int world);

int report_finished(const TrainOptions& o, const Resumed& r, int64_t total_steps);

}  // namespace convnext::train
