/* fkv: the C API of the fkv inference runtime (LLaMA-family GGUF models on CPU, Vulkan and CUDA).
 *
 * Conventions (docs/C-API.md has the long form):
 *  - Every function returns an fkv_status; FKV_OK is 0. On failure, fkv_last_error() gives the reason as
 *    text on the calling thread. No function aborts or exits; null pointers and out-of-range arguments
 *    are errors (FKV_ERR_INVALID_ARGUMENT), except that the *_free functions accept NULL.
 *  - Outputs go through pointer arguments and are written only on success.
 *  - Text in and out is UTF-8. Functions that fill a caller's buffer report the size they need: when the
 *    buffer is too small they return FKV_ERR_BUFFER_TOO_SMALL and still set the required size, so a
 *    caller may first pass a NULL buffer with capacity 0 to ask for the size.
 *  - Option structs are initialised with their *_init function, which sets struct_size; a struct that
 *    was not initialised that way is rejected.
 *  - Threads: a model and its contexts may be used from any thread; calls that run the model on
 *    contexts of one model are serialised internally (they share one backend). One context, and one
 *    sampler, must not be used from two threads at once.
 *
 * The header is C99 and C++ clean. FKV_API_VERSION grows when functions or struct members are added.
 */
#ifndef FKV_H
#define FKV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FKV_API_VERSION 1

#if defined(_WIN32) && defined(FKV_BUILDING_LIBRARY)
#define FKV_EXPORT __declspec(dllexport)
#elif defined(_WIN32)
#define FKV_EXPORT __declspec(dllimport)
#elif defined(__GNUC__)
#define FKV_EXPORT __attribute__((visibility("default")))
#else
#define FKV_EXPORT
#endif

typedef enum fkv_status {
  FKV_OK = 0,
  FKV_ERR_INVALID_ARGUMENT = 1, /* a null pointer, an out-of-range value, an uninitialised option struct */
  FKV_ERR_BAD_FILE = 2,         /* a model or state file is truncated, malformed or for another model */
  FKV_ERR_UNSUPPORTED = 3,      /* valid input this build cannot handle (backend, quant type, KV policy) */
  FKV_ERR_OUT_OF_MEMORY = 4,    /* host or device allocation failed */
  FKV_ERR_BACKEND = 5,          /* a driver call failed */
  FKV_ERR_IO = 6,               /* a file could not be opened or read */
  FKV_ERR_CONTEXT_FULL = 7,     /* the tokens do not fit in the context; nothing was evaluated */
  FKV_ERR_CANCELLED = 8,        /* a progress callback asked to stop */
  FKV_ERR_INTERNAL = 9,         /* a bug in fkv; please report it with fkv_last_error() */
  FKV_ERR_BUFFER_TOO_SMALL = 10 /* a caller's buffer is too small; the required size was reported */
} fkv_status;

typedef struct fkv_model fkv_model;     /* weights on one backend, plus the tokenizer */
typedef struct fkv_context fkv_context; /* one conversation: KV cache, position, last logits */
typedef struct fkv_sampler fkv_sampler; /* token selection state (seeded RNG, repetition window) */

/* ---- errors and version ------------------------------------------------------------------------- */

/* The text of the last failure on the calling thread ("" when none). Valid until the next fkv call on
 * this thread. Never NULL. */
FKV_EXPORT const char* fkv_last_error(void);
/* A constant name for a status ("FKV_OK", "FKV_ERR_IO", ...; "unknown" for other values). Never NULL. */
FKV_EXPORT const char* fkv_status_name(fkv_status status);
/* The FKV_API_VERSION the library was built with; compare with the header's to detect a mismatch. */
FKV_EXPORT fkv_status fkv_api_version(uint32_t* out_version);

/* ---- loading a model ---------------------------------------------------------------------------- */

/* Called while loading with the fraction done (0..1). Return non-zero to cancel: fkv_model_load then
 * returns FKV_ERR_CANCELLED and frees what it had loaded. */
typedef int (*fkv_progress_fn)(float fraction, void* user_data);

/* A context's KV cache policy and size. Also part of fkv_model_options, as the defaults of contexts
 * created with NULL options. */
typedef struct fkv_context_options {
  uint32_t struct_size;        /* set by fkv_context_options_init */
  int32_t n_ctx;               /* positions the context may reach; 0: the model's, at most 8192 */
  int32_t n_batch;             /* prefill chunk in tokens; 0: 256 */
  const char* kv_policy;       /* "full" (exact, default), "window" (sinks + recent), "fourier" */
  int32_t kv_sink;             /* window/fourier: first tokens kept exactly (default 4) */
  int32_t kv_window;           /* window/fourier: recent tokens kept exactly (default 1020) */
  int32_t fourier_n;           /* fourier: frequencies per compressed dimension (default 512) */
  double fourier_ratio;        /* fourier: fraction of dims compressed; < 0: the profile's (default -1) */
  const char* fourier_profile; /* fourier: calibration profile (JSON) path; NULL: built-in heuristic */
  int32_t fourier_fit_tokens;  /* fourier: middle tokens held exact before the range normalisation is
                                  fitted on them (default 256) */
} fkv_context_options;

typedef struct fkv_model_options {
  uint32_t struct_size;         /* set by fkv_model_options_init */
  const char* backend;          /* "cpu", "vulkan", "cuda" or "auto" (default) */
  int32_t device;               /* device index within the backend; -1: the backend's choice (default) */
  int32_t n_threads;            /* CPU threads; 0: all (default) */
  fkv_progress_fn progress;     /* may be NULL */
  void* progress_user_data;     /* passed to progress */
  fkv_context_options context;  /* defaults for fkv_context_create(model, NULL, ...) */
} fkv_model_options;

FKV_EXPORT fkv_status fkv_context_options_init(fkv_context_options* options);
FKV_EXPORT fkv_status fkv_model_options_init(fkv_model_options* options);

/* Loads a GGUF model. options may be NULL (defaults). The strings in options are copied. */
FKV_EXPORT fkv_status fkv_model_load(const char* path, const fkv_model_options* options, fkv_model** out_model);
/* Frees the model. Every context created on it must have been freed first (else FKV_ERR_INVALID_ARGUMENT
 * and nothing is freed). NULL is allowed and does nothing. */
FKV_EXPORT fkv_status fkv_model_free(fkv_model* model);

typedef struct fkv_model_info {
  int32_t n_vocab;
  int32_t n_layers;
  int32_t n_embd;
  int32_t n_heads;
  int32_t n_kv_heads;
  int32_t head_dim;
  int32_t n_ctx_train;     /* the context length the model was trained for */
  int32_t bos_token;       /* -1 when none */
  int32_t eos_token;       /* -1 when none */
  int32_t has_tokenizer;   /* 0 for models without a vocabulary (e.g. random-weight benchmark models) */
  uint64_t weight_bytes;   /* bytes of weights on the device */
  char backend[16];        /* "cpu", "vulkan", "cuda" */
  char device[128];        /* human-readable device name, truncated */
  char chat_template[16];  /* "chatml", "llama3", "llama2" */
} fkv_model_info;

FKV_EXPORT fkv_status fkv_model_get_info(const fkv_model* model, fkv_model_info* out_info);

/* ---- text --------------------------------------------------------------------------------------- */

/* Text (NUL-terminated) to token ids. add_bos: prepend BOS when the vocabulary asks for it.
 * parse_special: special-token text such as "<|im_start|>" becomes its id (use it for templated chat).
 * Writes at most capacity ids; *out_n_tokens is the number the text needs. */
FKV_EXPORT fkv_status fkv_tokenize(const fkv_model* model, const char* text, int add_bos, int parse_special,
                                   int32_t* tokens, size_t capacity, size_t* out_n_tokens);

/* Token ids to text: the tokens' bytes concatenated (may end in an incomplete UTF-8 sequence when the
 * ids end inside a character), followed by a NUL. *out_length is the text's length without the NUL; the
 * buffer needs *out_length + 1 bytes. */
FKV_EXPORT fkv_status fkv_detokenize(const fkv_model* model, const int32_t* tokens, size_t n_tokens, char* text,
                                     size_t capacity, size_t* out_length);

/* Sets *out to 1 when the token ends a reply (EOS, <|im_end|>, <|eot_id|>, ...), else 0. */
FKV_EXPORT fkv_status fkv_token_is_end(const fkv_model* model, int32_t token, int* out);

typedef struct fkv_chat_message {
  const char* role; /* "system", "user" or "assistant" */
  const char* content;
} fkv_chat_message;

/* Renders a conversation with the model's chat template (ChatML, Llama 3 or Llama 2, from the GGUF
 * metadata). add_assistant_prefix: end where the assistant's reply begins. Same buffer rules as
 * fkv_detokenize. Tokenize the result with parse_special = 1. */
FKV_EXPORT fkv_status fkv_apply_chat_template(const fkv_model* model, const fkv_chat_message* messages,
                                              size_t n_messages, int add_assistant_prefix, char* text,
                                              size_t capacity, size_t* out_length);

/* ---- contexts: evaluation ----------------------------------------------------------------------- */

/* A new context on model. options NULL: the model options' context defaults. */
FKV_EXPORT fkv_status fkv_context_create(fkv_model* model, const fkv_context_options* options,
                                         fkv_context** out_context);
FKV_EXPORT fkv_status fkv_context_free(fkv_context* context); /* NULL allowed */
/* Forgets the conversation: position 0, empty cache, no logits. */
FKV_EXPORT fkv_status fkv_context_reset(fkv_context* context);

/* Evaluates n_tokens (>= 1) at the next positions; afterwards fkv_get_logits gives the last token's.
 * FKV_ERR_CONTEXT_FULL when they do not fit (nothing is evaluated). */
FKV_EXPORT fkv_status fkv_prefill(fkv_context* context, const int32_t* tokens, size_t n_tokens);
/* Evaluates one token: fkv_prefill of one. */
FKV_EXPORT fkv_status fkv_decode(fkv_context* context, int32_t token);
/* The logits of the last evaluated token ([n_vocab] floats). The pointer stays valid until the next
 * evaluation, reset, restore or free of the context. FKV_ERR_INVALID_ARGUMENT before any evaluation. */
FKV_EXPORT fkv_status fkv_get_logits(const fkv_context* context, const float** out_logits, size_t* out_n_vocab);
/* Positions used so far, and the context length. */
FKV_EXPORT fkv_status fkv_context_get_position(const fkv_context* context, int32_t* out_n_past,
                                               int32_t* out_n_ctx);

/* ---- sampling ----------------------------------------------------------------------------------- */

typedef struct fkv_sampler_options {
  uint32_t struct_size;     /* set by fkv_sampler_options_init */
  float temperature;        /* <= 0: greedy (default 0.7) */
  int32_t top_k;            /* <= 0: off (default 40) */
  float top_p;              /* >= 1: off (default 0.95) */
  float repetition_penalty; /* 1: off (default 1.1) */
  int32_t repeat_last_n;    /* tokens the penalty looks back over (default 64) */
  uint64_t seed;            /* same seed and logits: same tokens (default 0) */
} fkv_sampler_options;

FKV_EXPORT fkv_status fkv_sampler_options_init(fkv_sampler_options* options);
FKV_EXPORT fkv_status fkv_sampler_create(const fkv_sampler_options* options, fkv_sampler** out_sampler);
FKV_EXPORT fkv_status fkv_sampler_free(fkv_sampler* sampler); /* NULL allowed */
FKV_EXPORT fkv_status fkv_sampler_reset(fkv_sampler* sampler);
/* Tells the sampler about a token it did not pick (a prompt token), for the repetition penalty. */
FKV_EXPORT fkv_status fkv_sampler_accept(fkv_sampler* sampler, int32_t token);
/* Picks the next token from the context's current logits (and remembers it). */
FKV_EXPORT fkv_status fkv_sample(fkv_sampler* sampler, const fkv_context* context, int32_t* out_token);

/* Called for each generated token with its text (the bytes that complete UTF-8 characters so far; may
 * be empty, never NULL). Return non-zero to stop. */
typedef int (*fkv_token_fn)(int32_t token, const char* text, size_t text_length, void* user_data);

/* Streams a reply: evaluates prompt (may be empty when the context already holds logits), then samples,
 * reports and evaluates up to max_tokens tokens. Stops at an end-of-reply token (not reported, not
 * evaluated), when the callback returns non-zero (that token was reported but not evaluated), or when
 * the context is full (returns FKV_OK). on_token may be NULL. *out_n_generated (may be NULL) counts the
 * tokens reported. */
FKV_EXPORT fkv_status fkv_generate(fkv_context* context, fkv_sampler* sampler, const int32_t* prompt,
                                   size_t n_prompt, int32_t max_tokens, fkv_token_fn on_token, void* user_data,
                                   int32_t* out_n_generated);

/* ---- session state ------------------------------------------------------------------------------ */

/* A context's state is its token history with the boundaries of its evaluations, not the KV bytes:
 * restoring resets the context and evaluates the same tokens in the same calls again, so the next
 * logits are the same as before saving (bit-identical on a deterministic backend) for every KV policy,
 * at the cost of a prefill. A state restores only into a context of the same model whose n_ctx holds it.
 * Buffer rules as for fkv_detokenize, in bytes. */
FKV_EXPORT fkv_status fkv_state_save(const fkv_context* context, void* buffer, size_t capacity,
                                     size_t* out_size);
FKV_EXPORT fkv_status fkv_state_restore(fkv_context* context, const void* buffer, size_t size);

/* ---- memory and KV cache ------------------------------------------------------------------------ */

typedef struct fkv_memory_report {
  uint64_t weight_bytes;        /* the model's weights on the device (shared by its contexts) */
  uint64_t kv_allocated_bytes;  /* device bytes the context's KV cache reserved */
  uint64_t kv_used_bytes;       /* the sum of the parts below, at the current position */
  uint64_t kv_sink_bytes;       /* exact rows of the sink tokens */
  uint64_t kv_middle_kept_bytes;/* exact rows of the middle's kept dimensions (fourier) */
  uint64_t kv_coefficient_bytes;/* Fourier coefficients and normalisation numbers */
  uint64_t kv_window_bytes;     /* exact rows of the recent tokens (full: every token) */
  uint64_t kv_middle_pending_bytes; /* fourier: middle rows held exact until the fit; 0 afterwards */
} fkv_memory_report;

FKV_EXPORT fkv_status fkv_context_memory(const fkv_context* context, fkv_memory_report* out_report);

typedef struct fkv_kv_info {
  char policy[16];             /* "full", "window", "fourier" */
  int32_t capacity;            /* positions the context may reach */
  int32_t exact;               /* 1 when attention sees every past token exactly (full) */
  int32_t can_shift_positions; /* 1 when cached positions can be shifted (RoPE re-rotation): 0 for now */
  int32_t can_remove_tokens;   /* 1 when tokens can be removed from the cache: 0 for now */
  int32_t can_save_state;      /* 1: fkv_state_save works for this policy */
} fkv_kv_info;

FKV_EXPORT fkv_status fkv_context_kv_info(const fkv_context* context, fkv_kv_info* out_info);

#ifdef __cplusplus
}
#endif

#endif /* FKV_H */
