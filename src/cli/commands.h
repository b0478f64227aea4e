// One function per `convnext` command; each parses its own arguments (argv[first..]).
#pragma once

namespace convnext::cli {

int cmd_forward(int argc, char** argv, int first);
int cmd_info(int argc, char** argv, int first);
int cmd_bench(int argc, char** argv, int first);
int cmd_init(int argc, char** argv, int first);
int cmd_make_input(int argc, char** argv, int first);
int cmd_preprocess(int argc, char** argv, int first);
int cmd_classify(int argc, char** argv, int first);
int cmd_features(int argc, char** argv, int first);
int cmd_convert(int argc, char** argv, int first);
int cmd_download(int argc, char** argv, int first);
int cmd_train(int argc, char** argv, int first);
int cmd_eval(int argc, char** argv, int first);
int cmd_version(int argc, char** argv, int first);
int cmd_serve(int argc, char** argv, int first);

}  // namespace convnext::cli
