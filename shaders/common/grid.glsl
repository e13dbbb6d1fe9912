// Workgroup indexing shared by every shader. The host splits large workgroup counts over x and z (x is
// limited to 65535 on some devices), so a shader's linear workgroup id is x + z * num_x.
uint linear_workgroup() { return gl_WorkGroupID.x + gl_WorkGroupID.z * gl_NumWorkGroups.x; }
uint linear_workgroup_count() { return gl_NumWorkGroups.x * gl_NumWorkGroups.z; }

// A finite stand-in for -infinity in softmax bookkeeping: exp(kNegBig - m) underflows to 0 without the
// inf - inf = NaN traps of real infinities (some drivers also flush them under fast math).
const float kNegBig = -1.0e30;
