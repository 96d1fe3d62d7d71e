// direct.cpp: the baseline for the processor-overhead benchmark: libtorch called directly in
// C++ (no shim, no Go). Usage: direct MODEL.pt THREADS RUNS float|int64 DIM...
// Prints "median_ms min_ms max_ms" over RUNS timed forward calls after 3 warm-up calls.
#include <ATen/Parallel.h>
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

int main(int argc, char **argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: direct MODEL THREADS RUNS float|int64 DIM...\n");
    return 2;
  }
  at::set_num_threads(std::stoi(argv[2]));
  int runs = std::stoi(argv[3]);
  std::vector<int64_t> shape;
  for (int i = 5; i < argc; i++) shape.push_back(std::stoll(argv[i]));
  torch::jit::Module m = torch::jit::load(argv[1]);
  m.eval();
  at::Tensor x = std::string(argv[4]) == "int64" ? torch::randint(0, 1000, shape, torch::kLong) : torch::randn(shape);
  std::vector<double> ms;
  for (int i = 0; i < runs + 3; i++) {
    c10::InferenceMode guard;
    auto t0 = std::chrono::steady_clock::now();
    // Copy the input as the processor does (it borrows a request buffer) and read the output back.
    at::Tensor in = x.clone();
    at::Tensor out = m.forward({in}).toTensor().contiguous();
    std::vector<char> host(out.numel() * out.element_size());
    std::memcpy(host.data(), out.data_ptr(), host.size());
    double d = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (i >= 3) ms.push_back(d);
  }
  std::sort(ms.begin(), ms.end());
  std::printf("%.3f %.3f %.3f\n", ms[ms.size() / 2], ms.front(), ms.back());
  return 0;
}
