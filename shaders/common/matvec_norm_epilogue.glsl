// The decode matvec's epilogue for the end of a layer half (matvec_norm.comp): out holds the product
// (the o or down projection of the token, p.rows values), and the workgroup that finishes last computes
//   sum = residual + out, then norm_out = sum / sqrt(mean(sum^2) + eps) * norm_w
// as the separate add and RMSNorm would (add_rms_norm.comp). Why: each of those two ops per layer was a
// dispatch of its own, and a decode step is a chain of small dependent dispatches, each costing GPU idle.
//
// Arrival: every workgroup writes its rows, fences them and adds one to `arrivals`; the one that sees the
// count reach the dispatch's workgroups is the last, resets the counter for the next dispatch and reads the
// whole product (coherent) after a fence. Aliasing, as the engine calls it (x = x + xb, xb = norm(x)):
// sum may alias residual and norm_out may alias out, since every element is read and written by the same
// invocation, reads before the reduction's barrier, writes after. Needs p.rows % 4 == 0 and out_base 0;
// the host sizes NE so that one pass of NE vec4s per invocation covers the row.
// Included by common/matvec.glsl after its bindings, push constants and matvec_ops.glsl (red[]).

layout(constant_id = 5) const uint NE = 8u;  // vec4s of the row per invocation: p.rows / 4 <= NE * WG

layout(std430, binding = 3) readonly buffer Residual4 { vec4 res4[]; };
layout(std430, binding = 4) writeonly buffer Sum4 { vec4 sum4[]; };
layout(std430, binding = 5) readonly buffer NormW4 { vec4 nw4[]; };
layout(std430, binding = 6) writeonly buffer NormOut4 { vec4 no4[]; };
layout(std430, binding = 7) buffer Arrivals { uint arrivals; };  // 0 between dispatches

shared bool last_s;

// After the workgroup wrote its rows: true in the last workgroup to arrive, for all its invocations.
bool arrived_last() {
  memoryBarrierBuffer();  // this workgroup's rows before its arrival
  barrier();
  if (gl_LocalInvocationID.x == 0u) {
    const uint groups = gl_NumWorkGroups.x * gl_NumWorkGroups.y * gl_NumWorkGroups.z;
    last_s = atomicAdd(arrivals, 1u) == groups - 1u;
    if (last_s) arrivals = 0u;  // every workgroup has arrived: ready for the next dispatch
  }
  barrier();
  const bool last = last_s;
  if (last) memoryBarrierBuffer();  // the other workgroups' rows after their arrivals
  return last;
}

// The workgroup's sum of s, returned to every invocation (red[] is free once the rows are written).
float epilogue_sum(float s) {
  const uint tid = gl_LocalInvocationID.x;
#if FKV_SUBGROUP_ADD
  s = subgroupAdd(s);
  if (subgroupElect()) red[gl_SubgroupID] = s;
  barrier();
  float t = 0.0;
  for (uint k = 0u; k < gl_NumSubgroups; ++k) t += red[k];
  return t;
#else
  red[tid] = s;
  barrier();
  for (uint h = WG / 2u; h > 0u; h >>= 1) {
    if (tid < h) red[tid] += red[tid + h];
    barrier();
  }
  return red[0];
#endif
}

void add_and_norm() {
  const uint tid = gl_LocalInvocationID.x, n4 = p.rows / 4u;
  vec4 v[NE], wv[NE];
  float s = 0.0;
  [[unroll]] for (uint k = 0u; k < NE; ++k) {
    const uint j = tid + k * WG;
    v[k] = vec4(0.0);
    wv[k] = vec4(0.0);
    if (j < n4) {
      v[k] = res4[j] + o4[j];
      wv[k] = nw4[j];
    }
  }
  [[unroll]] for (uint k = 0u; k < NE; ++k) s += dot(v[k], v[k]);
  const float scale = 1.0 / sqrt(epilogue_sum(s) / float(p.rows) + p.eps);
  [[unroll]] for (uint k = 0u; k < NE; ++k) {
    const uint j = tid + k * WG;
    if (j < n4) {
      sum4[j] = v[k];
      no4[j] = v[k] * scale * wv[k];
    }
  }
}
