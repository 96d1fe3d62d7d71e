// openeas_torch.cpp: libopeneas_torch.so, the C shim between OpenEAS and libtorch.
// The API and its conventions are in openeas_torch.h. Every entry point catches every C++
// exception: nothing may unwind into the Go caller.
#include "openeas_torch.h"

#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/freeze_module.h>
#include <torch/csrc/jit/serialization/import.h>
#include <torch/cuda.h>
#include <torch/script.h>
#include <torch/version.h>

#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

struct oet_model {
  torch::jit::Module module;
  torch::Device device{torch::kCPU};
};

struct oet_outputs {
  std::vector<std::string> names;
  std::vector<at::Tensor> tensors;  // contiguous, on the CPU
  std::vector<oet_output> views;
};

namespace {

char *dup(const std::string &s) {
  char *p = static_cast<char *>(std::malloc(s.size() + 1));
  if (p) std::memcpy(p, s.c_str(), s.size() + 1);
  return p;
}

// message drops libtorch's C++ backtrace, which says nothing to a model's user.
std::string message(const std::exception &e) {
  if (auto ce = dynamic_cast<const c10::Error *>(&e)) return ce->what_without_backtrace();
  return e.what();
}

// Each entry point runs its body through guard, which turns exceptions into messages.
template <typename F>
char *guard(F &&f) {
  try {
    f();
    return nullptr;
  } catch (const std::exception &e) {
    return dup(message(e));
  } catch (...) {
    return dup("unknown C++ exception in libtorch");
  }
}

bool to_scalar_type(int32_t onnx, at::ScalarType *out) {
  switch (onnx) {
    case 1: *out = at::kFloat; return true;
    case 2: *out = at::kByte; return true;
    case 3: *out = at::kChar; return true;
    case 5: *out = at::kShort; return true;
    case 6: *out = at::kInt; return true;
    case 7: *out = at::kLong; return true;
    case 9: *out = at::kBool; return true;
    case 10: *out = at::kHalf; return true;
    case 11: *out = at::kDouble; return true;
    case 16: *out = at::kBFloat16; return true;
  }
  return false;
}

int32_t to_onnx(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return 1;
    case at::kByte: return 2;
    case at::kChar: return 3;
    case at::kShort: return 5;
    case at::kInt: return 6;
    case at::kLong: return 7;
    case at::kBool: return 9;
    case at::kHalf: return 10;
    case at::kDouble: return 11;
    case at::kBFloat16: return 16;
    default: return 0;
  }
}

std::string json_string(const std::string &s) {
  std::ostringstream o;
  o << '"';
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      o << '\\' << c;
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      o << buf;
    } else {
      o << c;
    }
  }
  o << '"';
  return o.str();
}

// child names a nested output: tuple/list elements get "_<i>", dict entries ".<key>"; at the
// top a tuple element is "output_<i>" and a dict entry its bare key.
std::string element_name(const std::string &parent, size_t i) {
  return (parent.empty() ? std::string("output") : parent) + "_" + std::to_string(i);
}
std::string key_name(const std::string &parent, const std::string &key) {
  return parent.empty() ? key : parent + "." + key;
}

void flatten(const c10::IValue &v, const std::string &name, oet_outputs *out) {
  if (v.isTensor()) {
    out->names.push_back(name.empty() ? "output_0" : name);
    out->tensors.push_back(v.toTensor().detach().to(torch::kCPU).contiguous());
  } else if (v.isTuple()) {
    const auto &elems = v.toTupleRef().elements();
    for (size_t i = 0; i < elems.size(); i++) flatten(elems[i], element_name(name, i), out);
  } else if (v.isList()) {
    auto list = v.toListRef();
    for (size_t i = 0; i < list.size(); i++) flatten(list[i], element_name(name, i), out);
  } else if (v.isGenericDict()) {
    for (const auto &e : v.toGenericDict()) {
      if (!e.key().isString()) throw std::runtime_error("output dict has a non-string key (" + e.key().tagKind() + ")");
      flatten(e.value(), key_name(name, e.key().toStringRef()), out);
    }
  } else if (v.isInt()) {
    flatten(c10::IValue(torch::scalar_tensor(v.toInt(), torch::kLong)), name, out);
  } else if (v.isDouble()) {
    flatten(c10::IValue(torch::scalar_tensor(v.toDouble(), torch::kDouble)), name, out);
  } else if (v.isBool()) {
    flatten(c10::IValue(torch::scalar_tensor(v.toBool(), torch::kBool)), name, out);
  } else if (!v.isNone()) {
    throw std::runtime_error("output " + (name.empty() ? std::string("output_0") : name) + " has type " +
                             v.tagKind() + ", which OpenEAS cannot return as a tensor");
  }
}

// static_outputs mirrors flatten over a type; false when the layout depends on values.
bool static_outputs(const c10::TypePtr &t, const std::string &name, std::vector<std::pair<std::string, std::string>> *out) {
  const std::string n = name.empty() ? "output_0" : name;
  if (t->kind() == c10::TypeKind::TensorType || t->kind() == c10::TypeKind::IntType ||
      t->kind() == c10::TypeKind::FloatType || t->kind() == c10::TypeKind::BoolType) {
    out->emplace_back(n, t->annotation_str());
    return true;
  }
  if (auto tt = t->cast<c10::TupleType>()) {
    for (size_t i = 0; i < tt->elements().size(); i++)
      if (!static_outputs(tt->elements()[i], element_name(name, i), out)) return false;
    return true;
  }
  return false;
}

bool starts_with(const std::string &s, const char *p) { return s.rfind(p, 0) == 0; }

// quantize_linear replaces aten::linear nodes whose weight is a constant float matrix by
// quantized::linear_dynamic over an int8 (per-tensor symmetric) prepacked weight.
int quantize_linear(torch::jit::Block *b, torch::jit::Graph &g) {
  int n = 0;
  auto prepack = c10::Dispatcher::singleton().findSchemaOrThrow("quantized::linear_prepack", "");
  for (auto it = b->nodes().begin(); it != b->nodes().end();) {
    torch::jit::Node *node = *it++;
    for (auto *sub : node->blocks()) n += quantize_linear(sub, g);
    if (node->kind() != c10::Symbol::fromQualString("aten::linear")) continue;
    auto w = torch::jit::toIValue(node->input(1));
    if (!w || !w->isTensor()) continue;
    at::Tensor weight = w->toTensor();
    if (weight.scalar_type() != at::kFloat || weight.dim() != 2) continue;
    c10::optional<at::Tensor> bias;
    auto bv = torch::jit::toIValue(node->input(2));
    if (!bv) continue;  // a computed bias: leave the node alone
    if (bv->isTensor()) bias = bv->toTensor();
    double amax = weight.abs().max().item<double>();
    double scale = amax > 0 ? amax / 127.0 : 1.0;
    at::Tensor qw = at::quantize_per_tensor(weight.contiguous(), scale, 0, at::kQInt8);
    torch::jit::Stack stack{c10::IValue(qw), bias ? c10::IValue(*bias) : c10::IValue()};
    prepack.callBoxed(&stack);
    torch::jit::WithInsertPoint guard(node);
    torch::jit::Value *packed = g.insertConstant(stack.at(0));
    // reduce_range: FBGEMM multiplies uint8 activations by int8 weights in pairs summed in
    // int16, which saturates at full range; 7-bit activations (PyTorch's default) avoid it.
    torch::jit::Value *reduce = g.insertConstant(true);
    torch::jit::Value *out = g.insert(c10::Symbol::fromQualString("quantized::linear_dynamic"), {node->input(0), packed, reduce});
    out->setType(node->output()->type());
    node->output()->replaceAllUsesWith(out);
    node->destroy();
    n++;
  }
  return n;
}

}  // namespace

extern "C" {

int oet_api_version(void) { return OET_API_VERSION; }
// OET_TORCH_VERSION comes from the build script: Debian's 1.13.1 headers say "1.13.0".
#ifndef OET_TORCH_VERSION
#define OET_TORCH_VERSION TORCH_VERSION
#endif
const char *oet_torch_version(void) { return OET_TORCH_VERSION; }
int oet_cuda_available(void) {
  try {
    return torch::cuda::is_available() ? 1 : 0;
  } catch (...) {
    return 0;
  }
}
void oet_free(char *p) { std::free(p); }

int oet_get_num_threads(void) { return at::get_num_threads(); }
void oet_set_num_threads(int n) {
  if (n > 0) at::set_num_threads(n);
}
int oet_get_num_interop_threads(void) { return at::get_num_interop_threads(); }
char *oet_set_num_interop_threads(int n) {
  return guard([&] { at::set_num_interop_threads(n); });
}

char *oet_load(const char *path, const char *device, int flags, oet_model **out) {
  *out = nullptr;
  return guard([&] {
    auto m = std::make_unique<oet_model>();
    m->device = torch::Device(device && *device ? device : "cpu");
    if (m->device.is_cuda() && !torch::cuda::is_available())
      throw std::runtime_error("device cuda asked for, but this libtorch sees no CUDA device (or was built without CUDA)");
    m->module = torch::jit::load(path, m->device);
    m->module.eval();
    if (!m->module.find_method("forward")) throw std::runtime_error("the TorchScript module has no forward method");
    if (flags & OET_LOAD_OPTIMIZE) m->module = torch::jit::optimize_for_inference(m->module);
    *out = m.release();
  });
}

void oet_free_model(oet_model *m) { delete m; }

char *oet_signature(oet_model *m, char **json_out) {
  *json_out = nullptr;
  return guard([&] {
    const auto &schema = m->module.get_method("forward").function().getSchema();
    std::ostringstream o;
    o << "{\"inputs\":[";
    const auto &args = schema.arguments();
    bool first = true;
    for (size_t i = 0; i < args.size(); i++) {
      if (i == 0 && args[i].name() == "self") continue;
      if (!first) o << ',';
      first = false;
      o << "{\"name\":" << json_string(args[i].name()) << ",\"type\":" << json_string(args[i].type()->annotation_str())
        << ",\"has_default\":" << (args[i].default_value() ? "true" : "false") << '}';
    }
    o << "],";
    c10::TypePtr ret = schema.returns().size() == 1 ? schema.returns()[0].type() : c10::TupleType::create({});
    o << "\"returns\":" << json_string(ret->annotation_str()) << ",\"outputs\":";
    std::vector<std::pair<std::string, std::string>> outs;
    if (static_outputs(ret, "", &outs)) {
      o << '[';
      for (size_t i = 0; i < outs.size(); i++) {
        if (i) o << ',';
        o << "{\"name\":" << json_string(outs[i].first) << ",\"type\":" << json_string(outs[i].second) << '}';
      }
      o << ']';
    } else {
      o << "null";
    }
    o << '}';
    *json_out = dup(o.str());
  });
}

char *oet_forward(oet_model *m, const oet_input *inputs, int n, oet_outputs **out) {
  *out = nullptr;
  return guard([&] {
    c10::InferenceMode inference;
    std::vector<c10::IValue> args;
    args.reserve(n);
    for (int i = 0; i < n; i++) {
      const oet_input &in = inputs[i];
      at::ScalarType st;
      if (!to_scalar_type(in.dtype, &st))
        throw std::runtime_error("input " + std::to_string(i) + ": element type " + std::to_string(in.dtype) + " has no libtorch equivalent");
      std::vector<int64_t> shape(in.shape, in.shape + in.ndim);
      int64_t numel = 1;
      for (auto d : shape) numel *= d;
      if (numel * static_cast<int64_t>(c10::elementSize(st)) != in.nbytes)
        throw std::runtime_error("input " + std::to_string(i) + ": data size does not match its shape");
      // The caller's buffer is only borrowed for this call: libtorch ops may keep views of
      // their inputs in outputs, and may need aligned data, so take a copy.
      at::Tensor t = torch::empty(shape, torch::TensorOptions().dtype(st));
      if (in.nbytes > 0) std::memcpy(t.data_ptr(), in.data, in.nbytes);
      if (!m->device.is_cpu()) t = t.to(m->device);
      args.emplace_back(std::move(t));
    }
    c10::IValue result = m->module.forward(std::move(args));
    auto res = std::make_unique<oet_outputs>();
    flatten(result, "", res.get());
    res->views.resize(res->tensors.size());
    for (size_t i = 0; i < res->tensors.size(); i++) {
      const at::Tensor &t = res->tensors[i];
      int32_t dt = to_onnx(t.scalar_type());
      if (dt == 0) throw std::runtime_error("output " + res->names[i] + " has element type " + std::string(c10::toString(t.scalar_type())) + ", which OpenEAS cannot return");
      res->views[i] = oet_output{res->names[i].c_str(), dt, static_cast<int32_t>(t.dim()), t.sizes().data(),
                                 t.data_ptr(), static_cast<int64_t>(t.numel() * t.element_size())};
    }
    *out = res.release();
  });
}

int oet_outputs_count(const oet_outputs *o) { return static_cast<int>(o->views.size()); }
const oet_output *oet_outputs_at(const oet_outputs *o, int i) { return &o->views.at(i); }
void oet_free_outputs(oet_outputs *o) { delete o; }

char *oet_optimize(const char *in_path, const char *out_path, const char *passes, char **log_out) {
  *log_out = nullptr;
  std::ostringstream log;
  char *err = guard([&] {
    torch::jit::Module m = torch::jit::load(in_path);
    m.eval();
    bool frozen = false;
    std::stringstream ps(passes ? passes : "");
    std::string pass;
    while (std::getline(ps, pass, ',')) {
      if (pass.empty()) continue;
      if (pass == "freeze") {
        m = torch::jit::freeze(m);
        frozen = true;
        size_t nodes = 0;
        for (auto *node : m.get_method("forward").graph()->nodes()) {
          (void)node;
          nodes++;
        }
        log << "freeze: " << nodes << " nodes in forward; ";
      } else if (pass == "quantize_dynamic") {
        if (!frozen) throw std::runtime_error("quantize_dynamic needs freeze first");
        auto engines = at::globalContext().supportedQEngines();
        if (engines.empty()) throw std::runtime_error("this libtorch has no quantized engine (FBGEMM or QNNPACK)");
        auto g = m.get_method("forward").graph();
        int n = quantize_linear(g->block(), *g);
        torch::jit::EliminateDeadCode(g);
        log << "quantize_dynamic: " << n << " linear layers to int8; ";
        if (n == 0) throw std::runtime_error("no aten::linear with a constant float weight to quantize");
      } else {
        throw std::runtime_error("unknown pass \"" + pass + "\"");
      }
    }
    m.save(out_path);
  });
  *log_out = dup(log.str());
  return err;
}

}  // extern "C"
