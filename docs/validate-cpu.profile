# cpu-measured, measured by `wikv calibrate` on this machine's CPU, model /work/wt-validate/models/fixtures/tiny-llama-tasks, wikv 0.1.0 (commit 68ad7a9)
# spec numbers from cpu-reference; efficiencies and overhead fitted to the measured points below
name = cpu-measured
peak_fp16_tflops = 1   # spec (cpu-reference)
mem_bw_gbps = 100   # spec (cpu-reference)
prefill_efficiency = 0.0285127   # fitted
decode_efficiency = 0.0504298   # fitted
kv_decode_gbps = 1   # not measured: cpu-reference's value
h2d_gbps = 0   # not measured: cpu-reference's value
step_overhead_ms = 0   # fitted
attention_efficiency = 0.00137527   # fitted
kv_decode_gbps.full = 1.00546   # measured
kv_decode_gbps.kivi2 = 0.187182   # measured
kv_decode_gbps.cachegen = 0.0656188   # measured
kv_decode_gbps.wikv = 0.0715668   # measured
# points: kind tokens measured_ms fitted_ms analytic_ms
#   decode 448 1.3497 1.4955 1.6084
#   decode 443 1.1416 1.4945 1.6073
#   decode 876 1.7757 1.5824 1.6960
#   decode 871 1.8593 1.5814 1.6950
#   prefill 448 360.4696 394.3827 311.6975
#   prefill 443 416.5305 386.6831 307.7674
#   prefill 876 1154.1989 1329.4514 686.0694
#   prefill 871 1493.8994 1315.3781 681.2628
