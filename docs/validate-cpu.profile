# cpu-measured, measured by `wikv calibrate` on this machine's CPU, model /work/wt-validate/models/fixtures/tiny-llama-tasks, wikv 0.1.0 (commit fca432d)
# spec numbers from cpu-reference; efficiencies and overhead fitted to the measured points below
name = cpu-measured
peak_fp16_tflops = 1   # spec (cpu-reference)
mem_bw_gbps = 100   # spec (cpu-reference)
prefill_efficiency = 0.0125037   # fitted
decode_efficiency = 0.0497036   # fitted
kv_decode_gbps = 1   # not measured: cpu-reference's value
h2d_gbps = 0   # not measured: cpu-reference's value
step_overhead_ms = 0   # fitted
attention_efficiency = 0.00358017   # fitted
kv_decode_gbps.full = 0.625931   # measured
kv_decode_gbps.kivi2 = 0.172015   # measured
kv_decode_gbps.cachegen = 0.0345371   # measured
kv_decode_gbps.wikv = 0.0615201   # measured
# points: kind tokens measured_ms fitted_ms analytic_ms
#   decode 448 1.2010 1.5173 1.6084
#   decode 443 1.2879 1.5163 1.6073
#   decode 876 1.9381 1.6055 1.6960
#   decode 871 1.7866 1.6045 1.6950
#   prefill 448 347.5922 331.3237 311.6975
#   prefill 443 308.8707 326.3598 307.7674
#   prefill 876 809.0243 862.2499 686.0694
#   prefill 871 908.8963 854.8377 681.2628
