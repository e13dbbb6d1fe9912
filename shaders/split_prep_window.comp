#version 450
// A decode step's split_attention_prep.comp and split_window_decode.comp in one dispatch (they are
// independent and ran side by side, no barrier between them): workgroups [0, chunks · kv_heads) do the
// sink/window pass (chunk = id % chunks, KV head = id / chunks), the rest the prep (query head j % count,
// frequency block j / count), both with 128 invocations. One dispatch fewer in the phase before the FFT
// middle pass.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x = 128) in;
layout(constant_id = 0) const uint D = 128u;   // split_window_decode.comp's constants
layout(constant_id = 1) const uint G = 4u;
layout(constant_id = 2) const bool KV_F16 = true;
layout(constant_id = 3) const uint CL = 32u;
layout(constant_id = 4) const uint PS = 130u;

layout(std430, binding = 0) readonly buffer Q { float q[]; };  // [heads, D]
layout(std430, binding = 1) readonly buffer OK { vec4 ok[]; };
layout(std430, binding = 2) readonly buffer OV { vec4 ov[]; };
layout(std430, binding = 3) readonly buffer KS { uvec4 ks[]; };
layout(std430, binding = 4) readonly buffer KW { uvec4 kw[]; };
layout(std430, binding = 5) readonly buffer VS { uvec4 vs[]; };
layout(std430, binding = 6) readonly buffer VW { uvec4 vw[]; };
layout(std430, binding = 7) writeonly buffer Partial { float part[]; };
layout(std430, binding = 8) readonly buffer Position { uint pos_reg; };
layout(std430, binding = 9) readonly buffer Coef { float coef[]; };  // K: [n_comp, 2N]
layout(std430, binding = 10) readonly buffer Norm { float norm[]; };  // K: [n_comp, 8]
layout(std430, binding = 11) readonly buffer Dims { int dims[]; };
layout(std430, binding = 12) writeonly buffer GV { float gv[]; };  // [heads, 2N + 4]

layout(push_constant) uniform Params {
  uint heads;  // both
  uint kv_heads;
  float scale;  // the window pass
  uint chunks;
  uint window;
  uint sink;
  uint ring;
  uint count;  // the prep: query heads (one query)
  uint head_dim;
  uint n_freq;
  uint n_keep;
} p;

#include "common/grid.glsl"
#include "common/f16_round.glsl"
#include "common/split_window_body.glsl"
const uint PREP_WG = 128u;
#include "common/split_prep_body.glsl"

void main() {
  const uint id = gl_WorkGroupID.x, windows = p.chunks * p.kv_heads;
  if (id < windows)
    window_decode(id % p.chunks, id / p.chunks);
  else
    prep((id - windows) % p.count, (id - windows) / p.count);
}
