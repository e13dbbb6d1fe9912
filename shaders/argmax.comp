#version 450
// Greedy decoding's argmax where the logits are (Backend::argmax): the first index of the largest value of
// x[x_base, x_base + n), NaN ignored, as Sampler::argmax picks it, so that a decode step reads back 8 bytes
// instead of the vocabulary's logits. One workgroup: invocation t scans t, t + WG, ... (coalesced; its own
// indices rise, so a strict > keeps its first maximum), then a tree keeps the larger value, on ties the
// lower index. out = (index, 1), or (0, 0) when no value is above -inf (the host then decides).
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 256u;  // a power of two

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Out { uint o[]; };

layout(push_constant) uniform Params {
  uint n;
  uint x_base;
} p;

#define kNegInf uintBitsToFloat(0xFF800000u)
shared float best_s[WG];
shared uint index_s[WG];

void main() {
  const uint tid = gl_LocalInvocationID.x;
  float best = kNegInf;
  uint index = 0xFFFFFFFFu;
  for (uint i = tid; i < p.n; i += 4u * WG) {
    float v[4];  // four loads in flight
    [[unroll]] for (uint k = 0u; k < 4u; ++k) v[k] = i + k * WG < p.n ? x[p.x_base + i + k * WG] : kNegInf;
    [[unroll]] for (uint k = 0u; k < 4u; ++k) {
      if (v[k] > best) {
        best = v[k];
        index = i + k * WG;
      }
    }
  }
  best_s[tid] = best;
  index_s[tid] = index;
  barrier();
  [[unroll]] for (uint s = WG / 2u; s > 0u; s >>= 1u) {
    if (tid < s) {
      const float b = best_s[tid + s];
      const uint j = index_s[tid + s];
      if (b > best_s[tid] || (b == best_s[tid] && j < index_s[tid])) {
        best_s[tid] = b;
        index_s[tid] = j;
      }
    }
    barrier();
  }
  if (tid == 0u) {
    const bool found = best_s[0] > kNegInf;
    o[0] = found ? index_s[0] : 0u;
    o[1] = found ? 1u : 0u;
  }
}
