#include "common/model_loader.h"

#include <unistd.h>

#include <cstdio>

#include "backend/registry.h"
#include "kv/kv_options.h"

namespace fkv::tools {

namespace {

// A one-line progress bar on stderr, redrawn only when the shown percentage changes.
class ProgressBar {
 public:
  explicit ProgressBar(const char* label) : label_(label), tty_(isatty(STDERR_FILENO)) {}
  bool update(float fraction) {
    const int percent = int(fraction * 100.0f + 0.5f);
    if (percent == last_) return true;
    last_ = percent;
    if (tty_) {
      const int filled = percent * kWidth / 100;
      std::fprintf(stderr, "\r%s [%.*s%*s] %3d%%", label_, filled, "##################################################",
                   kWidth - filled, "", percent);
      if (percent == 100) std::fputc('\n', stderr);
    } else if (percent == 100) {
      std::fprintf(stderr, "%s: done\n", label_);
    }
    return true;
  }

 private:
  static constexpr int kWidth = 40;
  const char* label_;
  bool tty_;
  int last_ = -1;
};

}  // namespace

LoadedModel load_model(const CommonOptions& o, bool quiet) {
  LoadedModel m;
  const std::string path = resolve_model_path(o);
  m.file = GgufFile::open(path);
  BackendOptions bo;
  bo.name = o.backend;
  bo.device = o.device;
  bo.threads = o.threads;
  m.backend = create_backend(bo);
  ProgressBar bar("loading model");
  LoadProgress progress;
  if (!quiet) progress = [&bar](float f) { return bar.update(f); };
  m.model = LlamaModel::load(*m.file, *m.backend, progress);
  return m;
}

KvOptions kv_options(const CommonOptions& o) {
  KvOptions k;
  k.policy = o.kv;
  k.sink = o.sink;
  k.window = o.window;
  k.fourier_n = o.fourier_n;
  k.fourier_ratio = o.fourier_ratio;
  k.fourier_profile = o.fourier_profile;
  k.fourier_norm = o.fourier_norm;
  return k;
}

}  // namespace fkv::tools
