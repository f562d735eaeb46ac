#include "lora/module_delta.h"

#include <torch/torch.h>

#include "core/printable.h"

namespace sdtune::lora {

namespace {

std::string described(const std::string& name, const at::Tensor& t) { return name + " " + shape_text(t.sizes().vec()); }

const at::Tensor* factor(const LoraModule& m, const std::string& key) {
  auto it = m.factors.find(key);
  return it == m.factors.end() ? nullptr : &it->second;
}

// Rows x columns (times kernel elements) of a product w_a [rows, r] @ w_b [r, cols], or of a CP form
// t [r, r, kh, kw] with w_a [r, rows], w_b [r, cols]. {0, 0} with `problem` set when they do not fit.
std::pair<int64_t, int64_t> product_size(const at::Tensor& a, const at::Tensor& b, const at::Tensor* t, const std::string& a_name,
                                         const std::string& b_name, std::string* problem) {
  if (a.dim() != 2 || b.dim() != 2 || (t && t->dim() != 4)) {
    *problem = described(a_name, a) + " and " + described(b_name, b) + " must be matrices" + (t ? " (and the CP core 4-D)" : "");
    return {0, 0};
  }
  if (t) {
    if (a.size(0) != t->size(0) || b.size(0) != t->size(1)) *problem = described(a_name, a) + " and " + described(b_name, b) + " do not fit their CP core";
    return {a.size(1), b.size(1) * t->size(2) * t->size(3)};
  }
  if (a.size(1) != b.size(0)) *problem = described(a_name, a) + " and " + described(b_name, b) + " do not multiply";
  return {a.size(0), b.size(1)};
}

at::Tensor product(const at::Tensor& a, const at::Tensor& b, const at::Tensor* t) {
  if (t) return torch::einsum("i j k l, j r, i p -> p r k l", {*t, b, a});
  return torch::matmul(a, b);
}

// LoKr's factor k (1 or 2): full "lokr_wk", or "lokr_wk_a" @ "lokr_wk_b" (with "lokr_t2" for k = 2).
struct KronFactor {
  at::Tensor full, a, b;
  const at::Tensor* t = nullptr;
};
KronFactor kron_factor(const LoraModule& m, int k) {
  const std::string w = "lokr_w" + std::to_string(k);
  KronFactor f;
  if (const auto* full = factor(m, w)) f.full = *full;
  if (const auto* a = factor(m, w + "_a")) f.a = *a;
  if (const auto* b = factor(m, w + "_b")) f.b = *b;
  if (k == 2) f.t = factor(m, "lokr_t2");
  return f;
}

// Rows and columns (with any kernel) of a LoKr factor as a matrix, or {0, 0} with `problem`.
std::pair<int64_t, int64_t> kron_factor_size(const KronFactor& f, int k, std::string* problem) {
  const std::string w = "lokr_w" + std::to_string(k);
  if (f.full.defined()) {
    if (f.full.dim() < 2) *problem = described(w, f.full) + " is no matrix";
    return f.full.dim() < 2 ? std::pair<int64_t, int64_t>{0, 0} : std::pair<int64_t, int64_t>{f.full.size(0), f.full.numel() / f.full.size(0)};
  }
  if (!f.a.defined() || !f.b.defined()) {
    *problem = "has neither " + w + " nor both " + w + "_a and " + w + "_b";
    return {0, 0};
  }
  return product_size(f.a, f.b, f.t, w + "_a", w + "_b", problem);
}

at::Tensor kron_factor_value(const KronFactor& f) { return f.full.defined() ? f.full : product(f.a, f.b, f.t); }

}  // namespace

DeltaSize delta_size(const LoraModule& m) {
  DeltaSize size;
  std::pair<int64_t, int64_t> rows_cols{0, 0};
  if (m.type == ModuleType::LoRA) {
    const int64_t rank = m.down.size(0);
    if (m.mid.defined()) {
      if (m.mid.dim() != 4 || m.mid.size(0) != m.up.size(1) || m.mid.size(1) != rank || m.down.numel() != rank * m.down.size(1))
        size.problem = described("lora_mid", m.mid) + " does not fit down and up";
      rows_cols = {m.up.size(0), m.down.numel() / rank * m.mid.size(2) * m.mid.size(3)};
    } else {
      rows_cols = {m.up.size(0), m.down.numel() / rank};
    }
  } else if (m.type == ModuleType::LoHa) {
    for (const char* key : {"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"})
      if (!factor(m, key)) return {0, std::string("has no ") + key};
    const auto one = product_size(*factor(m, "hada_w1_a"), *factor(m, "hada_w1_b"), factor(m, "hada_t1"), "hada_w1_a", "hada_w1_b", &size.problem);
    const auto two = product_size(*factor(m, "hada_w2_a"), *factor(m, "hada_w2_b"), factor(m, "hada_t2"), "hada_w2_a", "hada_w2_b", &size.problem);
    if (size.problem.empty() && one != two) size.problem = "its two Hadamard factors have different sizes";
    rows_cols = one;
  } else {
    const auto one = kron_factor_size(kron_factor(m, 1), 1, &size.problem);
    const auto two = kron_factor_size(kron_factor(m, 2), 2, &size.problem);
    rows_cols = {one.first * two.first, one.second * two.second};
  }
  // Factors of a hostile file could name more weights than an int64 counts (no model has 2^53).
  if (size.problem.empty() && double(rows_cols.first) * double(rows_cols.second) > 9.0e15) size.problem = "makes an absurdly large weight";
  if (size.problem.empty()) size.numel = rows_cols.first * rows_cols.second;
  return size;
}

at::Tensor module_delta(const LoraModule& m, at::IntArrayRef target_shape) {
  at::Tensor delta;
  if (m.type == ModuleType::LoRA) {
    if (m.mid.defined())
      delta = torch::einsum("m n k l, i m, n j -> i j k l", {m.mid, m.up.flatten(1), m.down.flatten(1)});
    else
      delta = torch::matmul(m.up.flatten(1), m.down.flatten(1));
  } else if (m.type == ModuleType::LoHa) {
    delta = product(m.factors.at("hada_w1_a"), m.factors.at("hada_w1_b"), factor(m, "hada_t1")) *
            product(m.factors.at("hada_w2_a"), m.factors.at("hada_w2_b"), factor(m, "hada_t2"));
  } else {
    at::Tensor one = kron_factor_value(kron_factor(m, 1)), two = kron_factor_value(kron_factor(m, 2));
    if (two.dim() == 4) one = one.reshape({one.size(0), -1, 1, 1});
    delta = torch::kron(one.contiguous(), two.contiguous());  // LibTorch 1.13's kron views its inputs
  }
  return delta.reshape(target_shape);
}

bool dora_per_output(const LoraModule& m, int64_t out_rows) {
  return m.dora_scale.size(0) == out_rows && (m.dora_scale.dim() < 2 || m.dora_scale.size(1) == 1);
}

at::Tensor weight_change(const LoraModule& m, const at::Tensor& weight, double strength) {
  const at::Tensor delta = module_delta(m, weight.sizes()) * m.scale();
  if (!m.dora_scale.defined()) return delta * strength;
  const at::Tensor w = weight.to(torch::kFloat), calc = w + delta;
  std::vector<int64_t> norm_shape(size_t(calc.dim()), 1);
  at::Tensor norm;
  if (dora_per_output(m, calc.size(0))) {
    norm_shape[0] = calc.size(0);
    norm = calc.reshape({calc.size(0), -1}).norm(2, {1}).reshape(norm_shape);
  } else {
    norm_shape[1] = calc.size(1);
    norm = calc.transpose(0, 1).reshape({calc.size(1), -1}).norm(2, {1}).reshape(norm_shape);
  }
  const at::Tensor decomposed = calc * (m.dora_scale.reshape(norm_shape) / norm);
  return (decomposed - w) * strength;
}

}  // namespace sdtune::lora
