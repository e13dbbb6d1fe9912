// fkv-chat: talk to a model. Interactive with line editing, or one-shot with --prompt.
#include <editline/readline.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "backend/registry.h"
#include "common/cli_options.h"
#include "common/model_loader.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

#ifdef FKV_HAVE_VULKAN
#include "backend/vulkan/vulkan_backend.h"
#endif

namespace fkv::tools {
namespace {

std::atomic<bool> g_interrupted{false};
void on_sigint(int) { g_interrupted = true; }

struct ChatOptions {
  CommonOptions common;
  std::string prompt;
  std::string system;
  int n_predict = -1;  // -1: until the end of the reply or the context
  SamplerOptions sampling;
  bool list_devices = false;
  bool show_stats = false;
};

// One conversation: the messages so far, and the tokens the session has already seen.
class Chat {
 public:
  Chat(LoadedModel& m, const ChatOptions& o)
      : m_(m),
        o_(o),
        tokenizer_(Tokenizer::from_gguf(*m.file)),
        chat_template_(chat_template_from_gguf(*m.file)),
        session_(*m.model, session_options(o)),
        sampler_(o.sampling) {
    if (!o.system.empty()) messages_.push_back({"system", o.system});
  }

  // Adds the user's message, streams the reply to stdout and keeps it in the conversation.
  void reply(const std::string& user_text) {
    messages_.push_back({"user", user_text});
    const std::string rendered = apply_chat_template(chat_template_, messages_, true);
    std::vector<int32_t> wanted = tokenizer_->encode(rendered, tokenizer_->add_bos_by_default(), true);
    // Reuse the cached prefix; a conversation that no longer matches it starts again from scratch.
    size_t common = 0;
    while (common < seen_.size() && common < wanted.size() && seen_[common] == wanted[common]) ++common;
    if (common < seen_.size() || common == wanted.size()) {
      session_.reset();
      seen_.clear();
      common = 0;
    }
    require(wanted.size() < size_t(session_.ctx()), ErrorCode::kContextFull,
            "the conversation (" + std::to_string(wanted.size()) + " tokens) no longer fits the context of " +
                std::to_string(session_.ctx()) + " tokens; use /reset or a larger --ctx");
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<int32_t> fresh(wanted.begin() + long(common), wanted.end());
    const std::vector<float>* logits = &session_.eval(fresh);
    seen_ = wanted;
    for (int32_t id : fresh) sampler_.accept(id);
    const auto t1 = std::chrono::steady_clock::now();

    Utf8StreamDecoder utf8;
    std::string answer;
    int generated = 0;
    g_interrupted = false;
    bool context_full = false;
    while (o_.n_predict < 0 || generated < o_.n_predict) {
      if (g_interrupted) break;
      const int32_t id = sampler_.sample(*logits);
      ++generated;
      if (tokenizer_->is_end_of_generation(id)) {
        // Keep the end-of-turn token in the cache so the next turn's prompt extends it.
        if (session_.n_past() < session_.ctx()) {
          session_.eval(std::vector<int32_t>{id});
          seen_.push_back(id);
        }
        break;
      }
      const std::string text = utf8.push(tokenizer_->token_bytes(id));
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
      answer += text;
      if (session_.n_past() >= session_.ctx()) {
        context_full = true;
        break;
      }
      logits = &session_.eval(std::vector<int32_t>{id});
      seen_.push_back(id);
    }
    const std::string tail = utf8.flush();
    std::fwrite(tail.data(), 1, tail.size(), stdout);
    answer += tail;
    std::fputc('\n', stdout);
    std::fflush(stdout);
    const auto t2 = std::chrono::steady_clock::now();
    if (g_interrupted) std::fprintf(stderr, "[stopped]\n");
    if (context_full) std::fprintf(stderr, "[context full: %d tokens; /reset to start over]\n", session_.ctx());
    messages_.push_back({"assistant", answer});
    last_prefill_ = {int(fresh.size()), std::chrono::duration<double>(t1 - t0).count()};
    last_decode_ = {generated, std::chrono::duration<double>(t2 - t1).count()};
    if (o_.show_stats) print_stats();
  }

  void reset() {
    messages_.clear();
    if (!o_.system.empty()) messages_.push_back({"system", o_.system});
    session_.reset();
    sampler_.reset();
    seen_.clear();
  }

  void print_stats() const {
    const KvMemoryReport kv = session_.kv_memory();
    std::fprintf(stderr,
                 "backend %s (%s) | context %d/%d tokens | prefill %d tok %.1f tok/s | decode %d tok %.1f tok/s\n"
                 "weights %.1f MiB | KV %s: used %.2f MiB (sink %.2f, middle kept %.2f, coefficients %.2f, "
                 "window %.2f, middle pending %.2f), allocated %.2f MiB\n",
                 m_.backend->name().c_str(), m_.backend->device_name().c_str(), session_.n_past(), session_.ctx(),
                 last_prefill_.tokens, rate(last_prefill_), last_decode_.tokens, rate(last_decode_),
                 mib(m_.model->weight_bytes()), session_.kv_cache().policy().c_str(), mib(kv.used()), mib(kv.sink),
                 mib(kv.middle_kept), mib(kv.coefficients), mib(kv.window), mib(kv.middle_pending),
                 mib(kv.allocated));
  }

 private:
  struct Timing {
    int tokens = 0;
    double seconds = 0;
  };
  static double rate(const Timing& t) { return t.seconds > 0 ? t.tokens / t.seconds : 0; }
  static double mib(size_t bytes) { return double(bytes) / (1024.0 * 1024.0); }
  static SessionOptions session_options(const ChatOptions& o) {
    SessionOptions s;
    s.ctx = o.common.ctx;
    s.kv = kv_options(o.common);
    return s;
  }

  LoadedModel& m_;
  const ChatOptions& o_;
  std::unique_ptr<Tokenizer> tokenizer_;
  ChatTemplate chat_template_;  // with the model's default system prompt, as its own template renders
  Session session_;
  Sampler sampler_;
  std::vector<ChatMessage> messages_;
  std::vector<int32_t> seen_;
  Timing last_prefill_, last_decode_;
};

const char* kHelp =
    "commands:\n"
    "  /reset   start a new conversation\n"
    "  /stats   speed, context use and KV cache memory by part\n"
    "  /help    this text\n"
    "  /quit    leave (or Ctrl-D)\n"
    "Ctrl-C stops the reply being written; at the prompt it does nothing.\n";

// Reads a line with libedit when stdin is a terminal, plainly otherwise. False at end of input.
bool read_line(std::string& line) {
  if (isatty(STDIN_FILENO)) {
    char* raw = readline("> ");
    // Ctrl-C interrupts the terminal read (our handler has no SA_RESTART): offer a fresh prompt.
    while (!raw && g_interrupted.exchange(false)) {
      std::fputc('\n', stdout);
      raw = readline("> ");
    }
    if (!raw) return false;
    line = raw;
    if (!line.empty()) add_history(raw);
    free(raw);
    return true;
  }
  return bool(std::getline(std::cin, line));
}

int interactive(Chat& chat) {
  std::fprintf(stderr, "Type a message, /help for commands, Ctrl-D to quit.\n");
  std::string line;
  while (read_line(line)) {
    if (line.empty()) continue;
    if (line == "/quit" || line == "/exit") break;
    if (line == "/help") {
      std::fputs(kHelp, stderr);
      continue;
    }
    if (line == "/reset") {
      chat.reset();
      std::fprintf(stderr, "[new conversation]\n");
      continue;
    }
    if (line == "/stats") {
      chat.print_stats();
      continue;
    }
    if (line[0] == '/') {
      std::fprintf(stderr, "unknown command %s (/help lists them)\n", line.c_str());
      continue;
    }
    try {
      chat.reply(line);
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kContextFull) throw;
      std::fprintf(stderr, "%s\n", e.what());
    }
  }
  return kExitOk;
}

int chat_main(int argc, char** argv) {
  ChatOptions o;
  CLI::App app{"fkv-chat: chat with a LLaMA-family model (GGUF). Without --prompt it is interactive."};
  add_common_options(app, o.common, false);
  app.add_option("--prompt,-p", o.prompt, "one-shot: answer this message and exit");
  app.add_option("--system", o.system, "system message");
  app.add_option("--n-predict,-n", o.n_predict, "maximum tokens to generate per reply (-1: no limit)");
  app.add_option("--temp", o.sampling.temperature, "temperature (0: greedy)")->capture_default_str();
  app.add_option("--top-k", o.sampling.top_k, "top-k (0: off)")->capture_default_str();
  app.add_option("--top-p", o.sampling.top_p, "top-p (1: off)")->capture_default_str();
  app.add_option("--repeat-penalty", o.sampling.repetition_penalty, "repetition penalty (1: off)")
      ->capture_default_str();
  app.add_option("--seed", o.sampling.seed, "random seed")->capture_default_str();
  app.add_flag("--stats", o.show_stats, "print speed and memory after each reply");
  app.add_flag("--list-devices", o.list_devices, "list the devices of each backend and exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitBadInput;
  }
  if (o.list_devices) {
    std::printf("cpu: the host CPU\n");
#ifdef FKV_HAVE_VULKAN
    const auto devices = vulkan_list_devices();
    if (devices.empty()) std::printf("vulkan: no devices (is a Vulkan driver installed?)\n");
    for (size_t i = 0; i < devices.size(); ++i) std::printf("vulkan %zu: %s\n", i, devices[i].c_str());
#endif
    return kExitOk;
  }
  LoadedModel m = load_model(o.common, false);
  std::fprintf(stderr, "%s on %s (%s)\n", m.model->hparams().name.c_str(), m.backend->name().c_str(),
               m.backend->device_name().c_str());
  Chat chat(m, o);
  struct sigaction sa = {};
  sa.sa_handler = on_sigint;
  sigaction(SIGINT, &sa, nullptr);
  if (!o.prompt.empty()) {
    chat.reply(o.prompt);
    return kExitOk;
  }
  return interactive(chat);
}

}  // namespace
}  // namespace fkv::tools

int main(int argc, char** argv) { return fkv::tools::run_tool("fkv-chat", fkv::tools::chat_main, argc, argv); }
