// The library's own way into a public model object: the Network behind it. Public headers only
// name this struct (a friend of detail::ModelBase); its definition stays inside the library.
#pragma once
#include "convnext/model.h"
#include "model/network.h"

namespace convnext::detail {

struct Access {
  static Network& network(ModelBase& m) { return *m.net_; }
  static const Network& network(const ModelBase& m) { return *m.net_; }
};

}  // namespace convnext::detail
