# cpu-measured, measured by `wikv calibrate` on this machine's CPU, model /work/main/models/fixtures/tiny-llama-tasks, wikv 0.1.0 (commit d3076b0)
# spec numbers from cpu-reference; efficiencies and overhead fitted to the measured points below
name = cpu-measured
peak_fp16_tflops = 1   # spec (cpu-reference)
mem_bw_gbps = 100   # spec (cpu-reference)
prefill_efficiency = 0.0119877   # fitted
decode_efficiency = 0.056424   # fitted
kv_decode_gbps = 1   # not measured: cpu-reference's value
h2d_gbps = 0   # not measured: cpu-reference's value
step_overhead_ms = 0   # fitted
attention_efficiency = 0.00559538   # fitted
kv_decode_gbps.full = 0.724539   # measured
kv_decode_gbps.kivi2 = 0.185865   # measured
kv_decode_gbps.cachegen = 0.0480538   # measured
kv_decode_gbps.wikv = 0.0554373   # measured
# points: kind tokens measured_ms fitted_ms analytic_ms
#   decode 448 1.0306 1.3366 1.6084
#   decode 443 1.3615 1.3357 1.6073
#   decode 876 1.4078 1.4143 1.6960
#   decode 871 1.6850 1.4134 1.6950
#   prefill 448 308.8345 299.1908 311.6975
#   prefill 443 285.4116 295.0419 307.7674
#   prefill 876 722.5328 722.1711 686.0694
#   prefill 871 716.0297 716.4556 681.2628
