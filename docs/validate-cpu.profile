# cpu-measured, measured by `wikv calibrate` on this machine's CPU, model /work/wt-validate/models/fixtures/tiny-llama-tasks, wikv 0.1.0 (commit d1bd894)
# spec numbers from cpu-reference; efficiencies and overhead fitted to the measured points below
name = cpu-measured
peak_fp16_tflops = 1   # spec (cpu-reference)
mem_bw_gbps = 100   # spec (cpu-reference)
prefill_efficiency = 0.0162699   # fitted
decode_efficiency = 0.0702716   # fitted
kv_decode_gbps = 1   # not measured: cpu-reference's value
h2d_gbps = 0   # not measured: cpu-reference's value
step_overhead_ms = 0   # fitted
attention_efficiency = 0.00288767   # fitted
kv_decode_gbps.full = 0.78419   # measured
kv_decode_gbps.kivi2 = 0.191683   # measured
kv_decode_gbps.cachegen = 0.0317801   # measured
kv_decode_gbps.wikv = 0.0636209   # measured
# points: kind tokens measured_ms fitted_ms analytic_ms
#   decode 448 0.9694 1.0732 1.6084
#   decode 443 0.9397 1.0725 1.6073
#   decode 876 1.2577 1.1356 1.6960
#   decode 871 1.2364 1.1349 1.6950
#   prefill 448 290.3836 308.8584 311.6975
#   prefill 443 322.6733 303.8412 307.7674
#   prefill 876 885.6730 869.7743 686.0694
#   prefill 871 845.6557 861.7215 681.2628
