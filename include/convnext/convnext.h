// libconvnext: ConvNeXT (transformers semantics) in C++. Include this one header.
#pragma once
#include "convnext/benchmark.h"
#include "convnext/classifier.h"
#include "convnext/config.h"
#include "convnext/context.h"
#include "convnext/dtype.h"
#include "convnext/error.h"
#include "convnext/hub.h"
#include "convnext/image_processor.h"
#include "convnext/model.h"
#include "convnext/tensor.h"
#include "convnext/train.h"
#include "convnext/version.h"
