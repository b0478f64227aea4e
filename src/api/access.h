// The library's own way into a public model object: the ModelState behind it (parameters and
// inference plans). Public headers only name this struct (a friend of detail::ModelBase); its
// definition stays inside the library.
#pragma once
#include "convnext/model.h"
#include "model/plan.h"

namespace convnext::detail {

struct Access {
  static ModelState& state(ModelBase& m) { return *m.state_; }
  static const ModelState& state(const ModelBase& m) { return *m.state_; }
};

}  // namespace convnext::detail
