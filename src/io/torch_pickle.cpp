#include "io/torch_pickle.h"

#include <cstring>
#include <map>
#include <memory>
#include <unordered_map>

#include "convnext/error.h"

namespace convnext::io {

namespace {

constexpr size_t kMaxStack = 1u << 20, kMaxMemo = 1u << 20, kMaxMarks = 1u << 16;
constexpr int kMaxDepth = 64;

struct Value;
using V = std::shared_ptr<Value>;
struct Value {
  enum class K { None, Bool, Int, Float, Str, Tuple, List, Dict, Global, Storage, Tensor } k = K::None;
  int64_t i = 0;
  double f = 0;
  std::string s;                // Str; Global: "module.name"
  std::vector<V> items;         // Tuple, List
  std::map<std::string, V> dict;
  TorchTensorRecord rec;        // Storage (dtype, key, numel) and Tensor
  int depth = 1;
  bool frozen = false;          // placed inside another object: no longer mutable
};

const char* kind_name(Value::K k) {
  static const char* n[] = {"None", "bool", "int", "float", "str", "tuple", "list", "dict", "global", "storage", "tensor"};
  return n[static_cast<int>(k)];
}

// Storage types a state dict may name, and their dtypes.
const std::map<std::string, std::string>& storage_types() {
  static const std::map<std::string, std::string> m = {
      {"torch.FloatStorage", "F32"}, {"torch.HalfStorage", "F16"},  {"torch.BFloat16Storage", "BF16"},
      {"torch.DoubleStorage", "F64"}, {"torch.LongStorage", "I64"}, {"torch.IntStorage", "I32"},
      {"torch.ShortStorage", "I16"}, {"torch.CharStorage", "I8"},   {"torch.ByteStorage", "U8"},
      {"torch.BoolStorage", "BOOL"}};
  return m;
}

bool allowed_global(const std::string& g) {
  return g == "collections.OrderedDict" || g == "torch._utils._rebuild_tensor_v2" ||
         g == "torch._utils._rebuild_parameter" || storage_types().count(g) > 0;
}

class Unpickler {
 public:
  Unpickler(const uint8_t* d, size_t n, const std::string& file) : d_(d), n_(n), file_(file) {}

  V run() {
    for (;;) {
      if (pos_ >= n_) refuse("pickle ends without STOP (truncated?)");
      const size_t at = pos_;
      const uint8_t op = d_[pos_++];
      switch (op) {
        case 0x80: take(1); break;                       // PROTO
        case 0x95: take(8); break;                       // FRAME (length ignored: data is in memory)
        case '}': push(make(Value::K::Dict)); break;     // EMPTY_DICT
        case ']': push(make(Value::K::List)); break;     // EMPTY_LIST
        case ')': push(make(Value::K::Tuple)); break;    // EMPTY_TUPLE
        case '(':                                        // MARK
          if (marks_.size() >= kMaxMarks) refuse("too many nested MARKs");
          marks_.push_back(stack_.size());
          break;
        case 0x85: case 0x86: case 0x87: {               // TUPLE1/2/3
          const size_t k = op - 0x84u;
          need(k, "TUPLE" + std::to_string(k));
          std::vector<V> items(stack_.end() - static_cast<long>(k), stack_.end());
          stack_.resize(stack_.size() - k);
          push(tuple(std::move(items)));
          break;
        }
        case 't': push(tuple(pop_mark())); break;        // TUPLE
        case 's': {                                      // SETITEM
          need(3, "SETITEM");
          V v = pop(), k = pop();
          set_item(stack_.back(), k, v);
          break;
        }
        case 'u': {                                      // SETITEMS
          std::vector<V> kv = pop_mark();
          if (kv.size() % 2) refuse("SETITEMS with an odd number of items");
          need(1, "SETITEMS");
          for (size_t j = 0; j < kv.size(); j += 2) set_item(stack_.back(), kv[j], kv[j + 1]);
          break;
        }
        case 'a': {                                      // APPEND
          need(2, "APPEND");
          V v = pop();
          append(stack_.back(), v);
          break;
        }
        case 'e': {                                      // APPENDS
          std::vector<V> vs = pop_mark();
          need(1, "APPENDS");
          for (V& v : vs) append(stack_.back(), v);
          break;
        }
        case 'X': str(static_cast<size_t>(uint_le(4))); break;   // BINUNICODE
        case 0x8d: str(uint_le(8)); break;                        // BINUNICODE8
        case 0x8c: str(static_cast<size_t>(uint_le(1))); break;   // SHORT_BINUNICODE
        case 'J': push(integer(static_cast<int32_t>(uint_le(4)))); break;  // BININT
        case 'K': push(integer(static_cast<int64_t>(uint_le(1)))); break;  // BININT1
        case 'M': push(integer(static_cast<int64_t>(uint_le(2)))); break;  // BININT2
        case 0x8a: {                                                        // LONG1
          const size_t len = static_cast<size_t>(uint_le(1));
          if (len > 8) refuse("LONG1 integer of " + std::to_string(len) + " bytes is too large");
          const uint8_t* p = take(len);
          uint64_t u = 0;
          for (size_t j = len; j-- > 0;) u = (u << 8) | p[j];
          if (len > 0 && len < 8 && (p[len - 1] & 0x80)) u |= ~uint64_t{0} << (8 * len);
          push(integer(static_cast<int64_t>(u)));
          break;
        }
        case 'G': {                                      // BINFLOAT (big-endian)
          const uint8_t* p = take(8);
          uint64_t u = 0;
          for (int j = 0; j < 8; ++j) u = (u << 8) | p[j];
          V v = make(Value::K::Float);
          std::memcpy(&v->f, &u, 8);
          push(v);
          break;
        }
        case 0x88: case 0x89: {                          // NEWTRUE / NEWFALSE
          V v = make(Value::K::Bool);
          v->i = op == 0x88;
          push(v);
          break;
        }
        case 'N': push(make(Value::K::None)); break;
        case 'q': memo_put(uint_le(1)); break;           // BINPUT
        case 'r': memo_put(uint_le(4)); break;           // LONG_BINPUT
        case 0x94: memo_put(memo_.size()); break;        // MEMOIZE
        case 'h': memo_get(uint_le(1)); break;           // BINGET
        case 'j': memo_get(uint_le(4)); break;           // LONG_BINGET
        case 'c': {                                      // GLOBAL "module\nname\n"
          std::string mod = line(), name = line();
          push(global(mod + "." + name));
          break;
        }
        case 0x93: {                                     // STACK_GLOBAL
          need(2, "STACK_GLOBAL");
          V name = pop(), mod = pop();
          if (mod->k != Value::K::Str || name->k != Value::K::Str) refuse("STACK_GLOBAL on non-strings");
          push(global(mod->s + "." + name->s));
          break;
        }
        case 'R': {                                      // REDUCE
          need(2, "REDUCE");
          V args = pop(), fn = pop();
          push(reduce(fn, args));
          break;
        }
        case 'b': {                                      // BUILD: only an OrderedDict's attributes (_metadata), ignored
          need(2, "BUILD");
          pop();  // the state: {'_metadata': ...}
          if (stack_.back()->k != Value::K::Dict) refuse(std::string("BUILD on a ") + kind_name(stack_.back()->k) + " (only an OrderedDict's state is accepted)");
          break;
        }
        case 'Q': {                                      // BINPERSID
          need(1, "BINPERSID");
          push(storage(pop()));
          break;
        }
        case '.':                                        // STOP
          need(1, "STOP");
          return pop();
        default: {
          char hex[8];
          std::snprintf(hex, sizeof hex, "0x%02x", op);
          refuse(std::string("refused: unknown or disallowed pickle opcode ") + hex + " at byte " + std::to_string(at));
        }
      }
    }
  }

 private:
  [[noreturn]] void refuse(const std::string& what) const { throw Error(file_ + ": " + what); }

  const uint8_t* take(size_t k) {
    if (k > n_ - pos_) refuse("pickle truncated at byte " + std::to_string(pos_));
    const uint8_t* p = d_ + pos_;
    pos_ += k;
    return p;
  }
  uint64_t uint_le(size_t k) {
    const uint8_t* p = take(k);
    uint64_t v = 0;
    for (size_t j = k; j-- > 0;) v = (v << 8) | p[j];
    return v;
  }
  std::string line() {
    const void* nl = std::memchr(d_ + pos_, '\n', std::min<size_t>(n_ - pos_, 256));
    if (!nl) refuse("GLOBAL name not terminated");
    const size_t len = static_cast<size_t>(static_cast<const uint8_t*>(nl) - (d_ + pos_));
    std::string s(reinterpret_cast<const char*>(d_ + pos_), len);
    pos_ += len + 1;
    return s;
  }
  void str(uint64_t len) {
    V v = make(Value::K::Str);
    if (len > n_ - pos_) refuse("pickle truncated in a string at byte " + std::to_string(pos_));
    const uint8_t* p = take(static_cast<size_t>(len));
    v->s.assign(reinterpret_cast<const char*>(p), static_cast<size_t>(len));
    push(v);
  }

  static V make(Value::K k) {
    V v = std::make_shared<Value>();
    v->k = k;
    return v;
  }
  static V integer(int64_t i) {
    V v = make(Value::K::Int);
    v->i = i;
    return v;
  }
  V global(const std::string& g) {
    if (!allowed_global(g)) refuse("refused global '" + g + "' (only OrderedDict, torch tensor rebuilders and storage types are allowed)");
    V v = make(Value::K::Global);
    v->s = g;
    return v;
  }
  // `child` goes inside a container: it becomes immutable, and nesting depth is bounded.
  void adopt(Value& parent, const V& child) {
    if (child.get() == &parent) refuse("an object placed inside itself");
    child->frozen = true;
    parent.depth = std::max(parent.depth, child->depth + 1);
    if (parent.depth > kMaxDepth) refuse("objects nested deeper than " + std::to_string(kMaxDepth));
  }
  V tuple(std::vector<V> items) {
    V t = make(Value::K::Tuple);
    for (const V& c : items) adopt(*t, c);
    t->items = std::move(items);
    return t;
  }
  void set_item(const V& d, const V& k, const V& v) {
    if (d->k != Value::K::Dict) refuse(std::string("SETITEM on a ") + kind_name(d->k));
    if (d->frozen) refuse("SETITEM on a dict already placed inside another object");
    // Int keys appear in an optimizer's state ({0: {...}}): kept under their decimal spelling. A
    // state dict itself must have string keys (checked in unpickle_state_dict).
    if (k->k != Value::K::Str && k->k != Value::K::Int) refuse(std::string("dict key is a ") + kind_name(k->k) + ", expected a string");
    adopt(*d, v);
    d->dict[k->k == Value::K::Int ? "#int:" + std::to_string(k->i) : k->s] = v;
  }
  void append(const V& l, const V& v) {
    if (l->k != Value::K::List) refuse(std::string("APPEND on a ") + kind_name(l->k));
    if (l->frozen) refuse("APPEND on a list already placed inside another object");
    adopt(*l, v);
    l->items.push_back(v);
  }

  void push(V v) {
    if (stack_.size() >= kMaxStack) refuse("pickle stack exceeds " + std::to_string(kMaxStack) + " entries");
    stack_.push_back(std::move(v));
  }
  void need(size_t k, const std::string& op) {
    const size_t floor = marks_.empty() ? 0 : marks_.back();
    if (stack_.size() < floor + k) refuse("stack underflow in " + op);
  }
  V pop() {
    V v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  std::vector<V> pop_mark() {
    if (marks_.empty()) refuse("no MARK on the stack");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<V> items(stack_.begin() + static_cast<long>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  void memo_put(uint64_t idx) {
    need(1, "PUT");
    if (memo_.size() >= kMaxMemo && !memo_.count(idx)) refuse("memo exceeds " + std::to_string(kMaxMemo) + " entries");
    memo_[idx] = stack_.back();
  }
  void memo_get(uint64_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end()) refuse("memo index " + std::to_string(idx) + " out of range");
    push(it->second);
  }

  int64_t as_int(const V& v, const std::string& what) {
    if (v->k != Value::K::Int) refuse(what + " is a " + kind_name(v->k) + ", expected an int");
    return v->i;
  }
  std::vector<int64_t> int_tuple(const V& v, const std::string& what) {
    if (v->k != Value::K::Tuple) refuse(what + " is a " + kind_name(v->k) + ", expected a tuple");
    std::vector<int64_t> out;
    for (const V& x : v->items) out.push_back(as_int(x, what + " element"));
    return out;
  }

  // ('storage', <storage type>, key, location, numel)
  V storage(const V& pid) {
    if (pid->k != Value::K::Tuple || pid->items.size() != 5 || pid->items[0]->k != Value::K::Str || pid->items[0]->s != "storage")
      refuse("refused persistent id (expected ('storage', type, key, location, numel))");
    const V& type = pid->items[1];
    if (type->k != Value::K::Global || !storage_types().count(type->s)) refuse("persistent id names no storage type");
    if (pid->items[2]->k != Value::K::Str) refuse("storage key is not a string");
    V s = make(Value::K::Storage);
    s->rec.dtype = storage_types().at(type->s);
    s->rec.storage_key = pid->items[2]->s;
    const int64_t numel = as_int(pid->items[4], "storage numel");
    if (numel < 0) refuse("storage '" + s->rec.storage_key + "' has a negative size");
    s->rec.storage_numel = static_cast<uint64_t>(numel);
    return s;
  }

  V reduce(const V& fn, const V& args) {
    if (fn->k != Value::K::Global) refuse(std::string("refused REDUCE on a ") + kind_name(fn->k));
    if (args->k != Value::K::Tuple) refuse("REDUCE arguments are not a tuple");
    const std::vector<V>& a = args->items;
    if (fn->s == "collections.OrderedDict") {
      if (!a.empty()) refuse("OrderedDict called with arguments");
      return make(Value::K::Dict);
    }
    if (fn->s == "torch._utils._rebuild_parameter") {
      if (a.size() < 2 || a[0]->k != Value::K::Tensor) refuse("_rebuild_parameter without a tensor");
      return a[0];
    }
    if (fn->s == "torch._utils._rebuild_tensor_v2") {
      if (a.size() < 4 || a.size() > 7 || a[0]->k != Value::K::Storage) refuse("_rebuild_tensor_v2 called with unexpected arguments");
      V t = make(Value::K::Tensor);
      t->rec = a[0]->rec;
      const int64_t off = as_int(a[1], "storage offset");
      t->rec.shape = int_tuple(a[2], "tensor size");
      t->rec.stride = int_tuple(a[3], "tensor stride");
      if (t->rec.shape.size() != t->rec.stride.size()) refuse("tensor size and stride differ in length");
      if (off < 0) refuse("negative storage offset");
      t->rec.offset = static_cast<uint64_t>(off);
      // The last element it reaches must lie inside the storage (overflow-checked).
      unsigned __int128 last = t->rec.offset, numel = 1;
      for (size_t j = 0; j < t->rec.shape.size(); ++j) {
        if (t->rec.shape[j] < 0 || t->rec.stride[j] < 0) refuse("negative tensor size or stride");
        numel *= static_cast<uint64_t>(t->rec.shape[j]);
        if (t->rec.shape[j] > 0) last += static_cast<unsigned __int128>(t->rec.shape[j] - 1) * static_cast<uint64_t>(t->rec.stride[j]);
        if (numel > (uint64_t{1} << 48)) refuse("tensor of size " + shape_str(t->rec.shape) + " is too large");
      }
      if (numel > 0 && last >= t->rec.storage_numel)
        refuse("tensor of size " + shape_str(t->rec.shape) + ", stride " + shape_str(t->rec.stride) + ", offset " +
               std::to_string(off) + " reaches outside its storage '" + t->rec.storage_key + "' of " +
               std::to_string(t->rec.storage_numel) + " elements");
      return t;
    }
    refuse("refused REDUCE on '" + fn->s + "'");  // a storage type is not callable
  }

  const uint8_t* d_;
  size_t n_, pos_ = 0;
  const std::string& file_;
  std::vector<V> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, V> memo_;
};

}  // namespace

std::vector<TorchTensorRecord> unpickle_state_dict(const uint8_t* data, size_t size, const std::string& file) {
  Unpickler u(data, size, file);
  V top = u.run();
  if (top->k != Value::K::Dict) throw Error(file + ": the pickle holds a " + std::string(kind_name(top->k)) + ", expected a state dict");
  // A training checkpoint ({"model": state_dict, "epoch": 3, "optimizer": {...}}): its state
  // dict is the first of these entries that is a dict; the other entries are ignored (they
  // were only parsed, under the same restrictions).
  V sd = top;
  std::string where;
  bool all_tensors = true;
  for (auto& [name, v] : top->dict) all_tensors = all_tensors && v->k == Value::K::Tensor;
  if (!all_tensors)
    for (const char* key : {"model", "state_dict", "model_ema", "state_dict_ema"}) {
      auto it = top->dict.find(key);
      if (it != top->dict.end() && it->second->k == Value::K::Dict) {
        sd = it->second;
        where = std::string(" (under '") + key + "')";
        break;
      }
    }
  std::vector<TorchTensorRecord> out;
  for (auto& [name, v] : sd->dict) {
    if (name.starts_with("#int:")) throw Error(file + ": state dict" + where + " has an integer key " + name.substr(5));
    if (v->k != Value::K::Tensor)
      throw Error(file + ": state dict" + where + " entry '" + name + "' is a " + kind_name(v->k) + ", not a tensor" +
                  (sd == top ? " (and no 'model', 'state_dict', 'model_ema' or 'state_dict_ema' dict holds the state dict)" : ""));
    out.push_back(v->rec);
    out.back().name = name;
  }
  return out;
}

}  // namespace convnext::io
