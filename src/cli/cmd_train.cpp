// convnext train / convnext eval.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <set>
#include <string>

#include "args.h"
#include "commands.h"
#include "convnext/convnext.h"

namespace convnext::cli {

namespace {
const char* kTrainHelp = R"(usage: convnext train (--model DIR | --config CONFIG.json | --arch NAME) --data PATH --output DIR [options]
       convnext train --resume DIR [options to change]

Trains or fine-tunes ConvNextForImageClassification with the mathematics of PyTorch + transformers
(the Trainer's loop: AdamW, schedule, clipping, accumulation) and writes DIR as a transformers
checkpoint (config.json with id2label, model.safetensors, preprocessor_config.json) plus
optimizer.safetensors and trainer_state.json for --resume, log.jsonl and training.svg.

model:
  --model DIR                  fine-tune a checkpoint (any form `convnext forward` loads)
  --config CONFIG.json         a fresh model of this config (initialised as transformers does)
  --arch NAME                  a fresh tiny|small|base|large|xlarge|atto|femto|pico|nano, or V2 v2-atto ... v2-huge
  --resume DIR                 continue the run saved in DIR (after Ctrl-C, --save-every, or to
                               make it longer): its data, evaluation data, hyperparameters,
                               schedule, length, seed and augmentation are restored unless given
                               here; --output defaults to DIR. A finished run is left as it is.
                               A longer --steps/--epochs decays the learning rate from the rate
                               the run had at DIR's step to 0 at the new end (never back up)
  --num-labels N               default: the data's classes (fresh model) or the checkpoint's
  --ignore-mismatched-sizes    replace a classifier of another size (fine-tuning to new classes)
  --processor FILE             preprocessor_config.json (default: the checkpoint's, the one beside
                               --config, else ConvNeXt's ImageNet settings at config.image_size)
  --drop-path-rate R           stochastic depth (default: the config's)

data (ImageFolder directory, CSV of path,label, MNIST/Fashion-MNIST idx DIR[:train|:test], or a
safetensors file with pixel_values and labels, used as-is):
  --data PATH                  training data
  --eval-data PATH             evaluated after every epoch (loss, top-1, top-5)
  --no-shuffle                 keep the data order
  --no-augment                 no RandomResizedCrop / horizontal flip
  --crop-scale MIN             RandomResizedCrop scale lower bound (default 0.08, torchvision's)
  --no-flip                    no horizontal flip

optimisation (defaults: the Hugging Face Trainer's):
  --epochs E | --steps N       length of the run (default 3 epochs)
  --batch-size B               per step (default 8)
  --grad-accum K               batches per optimizer step (default 1)
  --lr LR                      peak learning rate (default 5e-5)
  --weight-decay WD            AdamW decoupled decay (default 0; biases and LayerNorm weights exempt)
  --weight-decay-all           decay every parameter, as torch.optim.AdamW(model.parameters())
  --lr-scheduler KIND          constant | linear | cosine (default linear), after --warmup-steps W
  --max-grad-norm G            clip the global gradient norm (default 1.0; 0 disables)
  --seed S                     every random choice: init, order, augmentation, stochastic depth (default 42)
  --skip-nan                   skip a step whose loss is NaN/inf instead of stopping
  --dtype f32|bf16             the GEMMs' arithmetic (default f32). bf16: mixed precision as
                               torch.autocast runs it on CPU: every GEMM of forward and backward
                               (stem, downsampling, pointwise, classifier, and their input and
                               weight gradients) rounds its inputs to bf16 and sums in fp32;
                               master weights, depthwise conv, LayerNorm, activations, softmax,
                               loss, gradients and AdamW stay fp32; checkpoints are fp32

output:
  --output DIR                 the checkpoint directory
  --save-every N               also save every N optimizer steps (Ctrl-C always saves)
  --save-grads FILE            the gradients of the first optimizer step (F32, parameter names)
  --log-every N                optimizer steps per log.jsonl line (default: ~50 lines per run)
  --threads T                  compute threads (default: one per core)
  --workers W                  data-loading threads (default 2)
  --json                       print a JSON summary line on stdout at the end

data parallel (a build with MPI; see README "Training on several processes"):
  mpirun -np N convnext train ...   N ranks, one replica each. --batch-size is per rank: a step
                               trains on N x B examples, each rank its strided share of the epoch's
                               order (PyTorch's DistributedSampler: the order is padded with its own
                               start to a multiple of N), so N ranks x B see what 1 rank x N*B sees.
                               Rank 0's initial weights are broadcast; gradients are averaged over
                               the ranks (all-reduce) before clipping and AdamW. Rank 0 writes the
                               checkpoints, log.jsonl and progress; the loss it logs is the mean over
                               the global batch. Each rank's default --threads: the machine's CPUs
                               divided by its ranks. A run resumes on the same N only.
  --bucket-mb M                gradients are all-reduced in buckets of about M MB (default 25, as
                               PyTorch DDP), each started as soon as the backward has produced it
)";

const char* kEvalHelp = R"(usage: convnext eval --model DIR --data PATH [--batch-size B] [--threads T] [--workers W] [--json]
                     [--plot FILE.svg] [--dtype f32|bf16|int8] [--agree-with f32|bf16|int8]

Evaluates a ConvNextForImageClassification checkpoint on a data set (ImageFolder directory, CSV,
MNIST/Fashion-MNIST idx DIR[:train|:test], or safetensors pixel_values + labels), preprocessed
with the checkpoint's preprocessor_config.json: mean loss (as transformers computes it), top-1,
top-5, per-class accuracy and the confusion matrix. --plot writes the confusion matrix as SVG.

  --batch-size B               examples per forward pass (default 64)
  --threads T                  compute threads (default: one per core)
  --workers W                  data-loading threads, which decode and preprocess the next batches
                               while the model runs, as in `convnext train` (default 2); the
                               results do not depend on it
  --json                       one JSON line instead of the report
  --plot FILE.svg              the confusion matrix as a picture
  --dtype f32|bf16|int8        the arithmetic of the model's GEMMs (default f32; int8: the
                               blocks' pointwise layers with int8 weights per output channel and
                               activations quantized per row as they come, int32 sums)
  --agree-with DTYPE           also runs each batch in DTYPE and reports on how many examples
                               both give the same top-1 class ("agreement" in --json)

Under mpirun -np N each rank evaluates its share of the data (every example exactly once) and the
counts are summed; rank 0 prints the report.
)";
}  // namespace

int cmd_train(int argc, char** argv, int first) {
  const std::set<std::string> flags = {"ignore-mismatched-sizes", "weight-decay-all", "no-shuffle", "no-augment",
                                       "no-flip", "skip-nan", "json"};
  const std::set<std::string> options = {
      "model",       "config",    "arch",         "resume",       "num-labels",    "processor", "drop-path-rate",
      "data",        "eval-data", "output",       "epochs",       "steps",         "batch-size", "grad-accum",
      "lr",          "weight-decay", "lr-scheduler", "warmup-steps", "max-grad-norm", "seed",      "save-grads",
      "save-every",  "threads",   "workers",      "crop-scale",   "log-every",     "bucket-mb",
      "dtype"};
  Args a(argc, argv, first, flags, options);
  if (a.help()) {
    std::fputs(kTrainHelp, stdout);
    return 0;
  }
  TrainOptions o;
  // What the command line says; resuming, the run's saved settings fill in the rest.
  for (const auto* names : {&flags, &options})
    for (const std::string& name : *names)
      if (a.has(name)) o.given.insert(name);
  o.model_dir = a.get("model");
  o.config_path = a.get("config");
  o.arch = a.get("arch");
  o.resume_dir = a.get("resume");
  if (a.has("num-labels")) o.num_labels = a.get_int("num-labels", 0);
  o.ignore_mismatched_sizes = a.has("ignore-mismatched-sizes");
  o.processor_path = a.get("processor");
  if (a.has("drop-path-rate")) o.drop_path_rate = a.get_double("drop-path-rate", 0);
  o.data = a.get("data");  // required unless resuming (checked by run_training)
  o.eval_data = a.get("eval-data");
  o.output = a.get("output");  // resuming: the run's directory by default
  if (a.has("epochs")) o.epochs = a.get_int("epochs", 3);
  if (a.has("steps")) o.steps = a.get_int("steps", 1);
  if (o.epochs && o.steps) throw Error("give --epochs or --steps, not both");
  o.batch_size = a.get_int("batch-size", 8);
  o.grad_accum = a.get_int("grad-accum", 1);
  o.lr = a.get_double("lr", 5e-5);
  o.weight_decay = a.get_double("weight-decay", 0.0);
  o.weight_decay_all = a.has("weight-decay-all");
  o.scheduler = a.get("lr-scheduler", "linear");
  if (o.scheduler != "constant" && o.scheduler != "linear" && o.scheduler != "cosine")
    throw Error("--lr-scheduler must be constant, linear or cosine, got '" + o.scheduler + "'");
  o.warmup_steps = a.get_int("warmup-steps", 0);
  o.max_grad_norm = a.get_double("max-grad-norm", 1.0);
  o.shuffle = !a.has("no-shuffle");
  o.augment = !a.has("no-augment");
  o.hflip = !a.has("no-flip");
  o.crop_scale_min = a.get_double("crop-scale", 0.08);
  o.seed = static_cast<uint64_t>(a.get_int("seed", 42));
  o.save_grads = a.get("save-grads");
  o.save_every = a.get_int("save-every", 0);
  o.threads = a.threads();
  o.workers = static_cast<int>(a.get_int_in("workers", 2, 1, 1024));
  o.log_every = a.get_int("log-every", 0);
  o.bucket_mb = a.get_double("bucket-mb", 25);
  if (!(o.bucket_mb > 0 && o.bucket_mb <= 4096)) throw Error("--bucket-mb must be in (0, 4096]");
  o.precision = a.dtype({DType::F32, DType::BF16});
  o.json = a.has("json");
  o.skip_nan = a.has("skip-nan");
  if (o.lr < 0 || !(o.lr == o.lr)) throw Error("--lr must be >= 0");
  if (o.warmup_steps < 0) throw Error("--warmup-steps must be >= 0");
  return run_training(o);
}

int cmd_eval(int argc, char** argv, int first) {
  Args a(argc, argv, first, {"json"}, {"model", "data", "batch-size", "threads", "plot", "workers", "dtype", "agree-with"});
  if (a.help()) {
    std::fputs(kEvalHelp, stdout);
    return 0;
  }
  if (a.has("threads")) set_num_threads(a.threads());
  const bool json = a.has("json");
  EvalOptions eo;
  eo.batch_size = a.get_int("batch-size", 64);
  eo.workers = static_cast<int>(a.get_int_in("workers", 2, 1, 1024));
  eo.precision = a.dtype();
  if (a.has("agree-with")) {
    eo.agree_with = parse_dtype(a.get("agree-with"));
    if (*eo.agree_with == DType::F16) throw Error("--agree-with must be f32, bf16 or int8 (f16 is a storage format)");
  }
  eo.progress = [&](int64_t done, int64_t total) {
    if (!json && isatty(2) && distributed_rank() == 0) std::fprintf(stderr, "\r\033[Kevaluating %lld/%lld", static_cast<long long>(done), static_cast<long long>(total));
  };
  const EvalResult r = evaluate_dataset(a.required("model"), a.required("data"), eo);
  if (distributed_rank() != 0) return 0;  // under mpirun every rank evaluated its share; rank 0 reports
  if (!json && isatty(2)) std::fputc('\n', stderr);
  if (json) std::printf("%s\n", eval_json(r).c_str());
  else std::fputs(eval_text(r).c_str(), stdout);
  if (a.has("plot")) write_confusion_svg(r, a.get("plot"));
  return 0;
}

}  // namespace convnext::cli
