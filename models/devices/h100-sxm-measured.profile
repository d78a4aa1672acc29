# h100-sxm-measured, measured by `wikv calibrate` on NVIDIA H100 80GB HBM3, 81079 MiB, 2026-11-23, model synthetic:llama-3.1-8b, backend cuda, wikv 0.1.0 (commit ff3acba)
# spec numbers from h100-sxm; efficiencies and overhead fitted to the measured points below
name = h100-sxm-measured
peak_fp16_tflops = 989.4   # spec (h100-sxm)
mem_bw_gbps = 3350   # spec (h100-sxm)
prefill_efficiency = 0.469194   # fitted
decode_efficiency = 0.631054   # fitted
kv_decode_gbps = 1500   # not measured: h100-sxm's value
h2d_gbps = 50   # not measured: h100-sxm's value
step_overhead_ms = 0   # fitted
# points: kind tokens measured_ms fitted_ms analytic_ms
#   decode 1024 6.9746 7.1637 6.1508
#   decode 2048 7.0353 7.2271 6.2009
#   decode 4096 7.2727 7.3541 6.3011
#   decode 8192 7.6846 7.6081 6.5014
#   decode 16384 8.4557 8.1160 6.9020
#   prefill 512 14.2923 15.5465 12.6572
#   prefill 1024 26.7724 31.3868 25.0441
#   prefill 2048 56.0932 63.9556 50.5126
#   prefill 4096 123.9206 132.6460 104.2277
#   prefill 8192 290.6569 284.2378 222.7709
