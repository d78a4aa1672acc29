# cpu-measured, measured by `wikv calibrate` on this machine's CPU, model /work/wt-validate/models/fixtures/tiny-llama-tasks, wikv 0.1.0 (commit 68ad7a9)
# spec numbers from cpu-reference; efficiencies and overhead fitted to the measured points below
name = cpu-measured
peak_fp16_tflops = 1   # spec (cpu-reference)
mem_bw_gbps = 100   # spec (cpu-reference)
prefill_efficiency = 0.0037549   # fitted
decode_efficiency = 0.0279693   # fitted
kv_decode_gbps = 1   # not measured: cpu-reference's value
h2d_gbps = 0   # not measured: cpu-reference's value
step_overhead_ms = 0   # fitted
attention_efficiency = 0.00417445   # fitted
kv_decode_gbps.full = 0.875264   # measured
kv_decode_gbps.kivi2 = 0.20547   # measured
kv_decode_gbps.cachegen = 0.0642321   # measured
kv_decode_gbps.wikv = 0.0534465   # measured
# points: kind tokens measured_ms fitted_ms analytic_ms
#   decode 448 1.0967 2.6964 1.6084
#   decode 443 1.0889 2.6946 1.6073
#   decode 876 1.4833 2.8531 1.6960
#   decode 871 7.2523 2.8513 1.6950
#   prefill 448 808.9005 818.8160 311.6975
#   prefill 443 815.6889 808.5939 307.7674
#   prefill 876 1662.8589 1784.7519 686.0694
#   prefill 871 1896.5144 1772.4300 681.2628
