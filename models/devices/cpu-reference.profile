# The CPU reference engine (exec/cpu: plain C, fp32, one thread): the base profile that
# `wikv calibrate --backend cpu` and `wikv validate` fit to the machine they run on.
# The spec numbers are round upper bounds for one core, not a datasheet: only their products with the
# fitted efficiencies mean anything.
name = cpu-reference
peak_fp16_tflops = 1        # upper bound (one core: well below 1 TFLOP/s)
mem_bw_gbps = 100           # upper bound (one core's share of DRAM bandwidth is less)
prefill_efficiency = 0.01   # assumption until fitted
decode_efficiency = 0.05    # assumption until fitted
kv_decode_gbps = 1          # assumption until measured (`wikv validate` measures it per policy)
h2d_gbps = 0                # the engine reads host memory: no copy
step_overhead_ms = 0.1      # assumption until fitted
