/* Compiled by the api.header_is_c99 test with -std=c99 -pedantic -Werror: fkv.h must stay plain C99. */
#include "fkv.h"

#if FKV_API_VERSION < 1
#error "FKV_API_VERSION must be at least 1"
#endif

static int uses_every_type(void) {
  fkv_model_options mo;
  fkv_context_options* co = 0;
  fkv_sampler_options* so = 0;
  fkv_model_info* info = 0;
  fkv_memory_report* mem = 0;
  fkv_kv_info* kv = 0;
  fkv_chat_message msg = {"user", "hi"};
  fkv_progress_fn progress = 0;
  fkv_token_fn on_token = 0;
  fkv_status s = fkv_model_options_init(&mo);
  (void)co; (void)so; (void)info; (void)mem; (void)kv; (void)msg; (void)progress; (void)on_token;
  return s == FKV_OK ? 0 : 1;
}

int main(void) { return uses_every_type(); }
