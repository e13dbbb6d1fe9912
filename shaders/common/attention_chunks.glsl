// How decode/prefill attention splits the cache into chunks, computed on the GPU from the position
// register so that a recorded step stays valid at every position. The host dispatches `want` chunk
// workgroups (a fixed count per shape); chunks past the ones the current length needs exit at once.
// The split shaders and attention_merge.comp must agree, hence one definition.

// Keys per chunk: the length spread over `want` chunks, a multiple of `tile` keys, at least `min_len` (a
// multiple of `tile`): short contexts get few chunks (little to merge), long ones exactly `want`.
uint attention_chunk_len(uint max_len, uint want, uint tile, uint min_len) {
  const uint len = (max_len + want - 1u) / want;
  return max(min_len, (len + tile - 1u) / tile * tile);
}

uint attention_chunks(uint max_len, uint chunk_len) { return (max_len + chunk_len - 1u) / chunk_len; }

// A chunk's partial result in memory: the unnormalised output acc[0 .. D-1], then the max score m (at D) and
// the sum of exps l (at D + 1), padded to a multiple of 4 floats so that acc rows are 16-byte aligned (the
// merge reads them as vec4 when D % 4 == 0). vulkan_attention_plan.h sizes the buffer the same way.
uint attention_partial_stride(uint d) { return (d + 5u) & ~3u; }
