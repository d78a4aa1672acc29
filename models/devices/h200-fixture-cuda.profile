# h200-fixture-cuda, measured by `wikv calibrate` on NVIDIA H200, 143155 MiB, 2026-11-23, model models/fixtures/tiny-llama-tasks, backend cuda, wikv 0.1.0 (commit d3076b0)
# spec numbers from h100-sxm; efficiencies and overhead fitted to the measured points below
name = h200-fixture-cuda
peak_fp16_tflops = 989.4   # spec (h100-sxm)
mem_bw_gbps = 3350   # spec (h100-sxm)
prefill_efficiency = 0.00234954   # fitted
decode_efficiency = 0.0235489   # fitted
kv_decode_gbps = 1500   # not measured: h100-sxm's value
h2d_gbps = 50   # not measured: h100-sxm's value
step_overhead_ms = 0   # fitted
# points: kind tokens measured_ms fitted_ms analytic_ms
#   decode 1024 0.1108 0.1031 0.5030
#   decode 2048 0.1095 0.1164 0.5034
#   prefill 512 1.3121 1.5607 0.5061
#   prefill 1024 3.2638 3.5829 0.5140
#   prefill 2048 9.1828 9.0128 0.5353
