/* simple_chat: the smallest complete use of the fkv C API. Loads a model, renders one user message with
 * the model's chat template, and streams the reply to stdout.
 *
 *   fkv-simple-chat [--model FILE] [--prompt TEXT] [--n-predict N] [--backend NAME]
 *
 * Without --model it uses $FKV_MODEL, else the default model in $FKV_MODELS or ~/.cache/fkv. Exit status:
 * 0 success, 1 a runtime failure, 2 bad usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fkv.h"

static int fail(const char* what, fkv_status status) {
  fprintf(stderr, "simple_chat: %s failed: %s: %s\n", what, fkv_status_name(status), fkv_last_error());
  return 1;
}

static int print_token(int32_t token, const char* text, size_t length, void* user_data) {
  (void)token;
  (void)user_data;
  fwrite(text, 1, length, stdout);
  fflush(stdout);
  return 0; /* keep going */
}

static const char* default_model(char* buffer, size_t capacity) {
  const char* env = getenv("FKV_MODEL");
  const char* dir = getenv("FKV_MODELS");
  const char* home = getenv("HOME");
  if (env && *env) return env;
  if (dir && *dir) {
    snprintf(buffer, capacity, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", dir);
  } else {
    snprintf(buffer, capacity, "%s/.cache/fkv/SmolLM2-135M-Instruct.Q4_1.gguf", home ? home : "/tmp");
  }
  return buffer;
}

int main(int argc, char** argv) {
  char path_buffer[4096];
  const char* model_path = NULL;
  const char* prompt = "Write one sentence about the sea.";
  const char* backend = "auto";
  int n_predict = 64;
  int i;
  for (i = 1; i < argc; ++i) {
    const char* arg = argv[i];
    const char* value = i + 1 < argc ? argv[i + 1] : NULL;
    if (!value) {
      fprintf(stderr, "usage: %s [--model FILE] [--prompt TEXT] [--n-predict N] [--backend NAME]\n", argv[0]);
      return 2;
    }
    if (strcmp(arg, "--model") == 0) model_path = value;
    else if (strcmp(arg, "--prompt") == 0) prompt = value;
    else if (strcmp(arg, "--backend") == 0) backend = value;
    else if (strcmp(arg, "--n-predict") == 0) n_predict = atoi(value);
    else {
      fprintf(stderr, "simple_chat: unknown option %s\n", arg);
      return 2;
    }
    ++i;
  }
  if (!model_path) model_path = default_model(path_buffer, sizeof path_buffer);

  {
    uint32_t version = 0;
    fkv_api_version(&version);
    if (version != FKV_API_VERSION) {
      fprintf(stderr, "simple_chat: header is API %d, library is %u\n", FKV_API_VERSION, (unsigned)version);
      return 1;
    }
  }

  fkv_model_options model_options;
  fkv_model_options_init(&model_options);
  model_options.backend = backend;
  model_options.context.n_ctx = 2048;

  fkv_model* model = NULL;
  fkv_context* context = NULL;
  fkv_sampler* sampler = NULL;
  char* text = NULL;
  int32_t* tokens = NULL;
  int rc = 1;
  fkv_status s;

  if ((s = fkv_model_load(model_path, &model_options, &model)) != FKV_OK) return fail("loading the model", s);
  if ((s = fkv_context_create(model, NULL, &context)) != FKV_OK) {
    fail("creating a context", s);
    goto done;
  }

  /* Render the conversation: ask for the size first, then fill. */
  {
    fkv_chat_message messages[1];
    size_t length = 0;
    messages[0].role = "user";
    messages[0].content = prompt;
    s = fkv_apply_chat_template(model, messages, 1, 1, NULL, 0, &length);
    if (s != FKV_ERR_BUFFER_TOO_SMALL) {
      fail("rendering the chat template", s);
      goto done;
    }
    text = malloc(length + 1);
    if (!text || fkv_apply_chat_template(model, messages, 1, 1, text, length + 1, &length) != FKV_OK) {
      fail("rendering the chat template", FKV_ERR_OUT_OF_MEMORY);
      goto done;
    }
  }

  /* Tokenize the same way: size first. Special-token text in the template maps to its ids. */
  {
    size_t n_tokens = 0;
    s = fkv_tokenize(model, text, 1, 1, NULL, 0, &n_tokens);
    if (s != FKV_ERR_BUFFER_TOO_SMALL && s != FKV_OK) {
      fail("tokenizing", s);
      goto done;
    }
    tokens = malloc(n_tokens * sizeof *tokens + 1);
    if (!tokens || (s = fkv_tokenize(model, text, 1, 1, tokens, n_tokens, &n_tokens)) != FKV_OK) {
      fail("tokenizing", s);
      goto done;
    }

    fkv_sampler_options sampler_options;
    fkv_sampler_options_init(&sampler_options);
    sampler_options.temperature = 0; /* greedy: the same reply every run */
    if ((s = fkv_sampler_create(&sampler_options, &sampler)) != FKV_OK) {
      fail("creating a sampler", s);
      goto done;
    }
    int32_t n_generated = 0;
    s = fkv_generate(context, sampler, tokens, n_tokens, n_predict, print_token, NULL, &n_generated);
    printf("\n");
    if (s != FKV_OK) {
      fail("generating", s);
      goto done;
    }
    fkv_memory_report memory;
    fkv_context_memory(context, &memory);
    fprintf(stderr, "simple_chat: %d prompt tokens, %d generated; weights %.1f MiB, KV %.2f MiB used of %.1f MiB\n",
            (int)n_tokens, (int)n_generated, memory.weight_bytes / 1048576.0, memory.kv_used_bytes / 1048576.0,
            memory.kv_allocated_bytes / 1048576.0);
    rc = n_generated > 0 ? 0 : 1;
  }

done:
  free(tokens);
  free(text);
  fkv_sampler_free(sampler);
  fkv_context_free(context);
  fkv_model_free(model);
  return rc;
}
