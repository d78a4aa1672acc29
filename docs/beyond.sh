#!/usr/bin/env bash
# Remakes the tables of docs/BEYOND.md: the oracle/hybrid study (docs/beyond.grid) and the published
# WiKV ratios on fast Wi-Fi, and the policies at equal quality (docs/beyond-quality.grid). usage: bash docs/beyond.sh [DB]   (needs build/wikv and sqlite3)
set -euo pipefail
cd "$(dirname "$0")/.."
db=${1:-results/beyond.db}
mkdir -p "$(dirname "$db")"
./build/wikv sweep docs/beyond.grid --db "$db" --no-progress >/dev/null
echo "## TTFT as a ratio to the oracle (all traces of docs/beyond.grid, 10 requests each)"
sqlite3 -header -column "$db" "
WITH r AS (SELECT device, policy, ttft_s, ttft_s / oracle_ttft_s AS x, kv_fraction_at_first AS kv
           FROM complete_requests WHERE status = 'ok'),
a AS (SELECT device, policy, x, row_number() OVER (PARTITION BY device, policy ORDER BY x) AS i,
             count(*) OVER (PARTITION BY device, policy) AS n FROM r),
b AS (SELECT device, policy, ttft_s, row_number() OVER (PARTITION BY device, policy ORDER BY ttft_s) AS i,
             count(*) OVER (PARTITION BY device, policy) AS n FROM r),
xs AS (SELECT device, policy, max(n) AS requests, max(CASE WHEN i <= (n + 1) / 2 THEN x END) AS med_x,
              max(CASE WHEN i <= (n * 95 + 99) / 100 THEN x END) AS p95_x FROM a GROUP BY device, policy),
ts AS (SELECT device, policy, max(CASE WHEN i <= (n + 1) / 2 THEN ttft_s END) AS med_s,
              max(CASE WHEN i <= (n * 95 + 99) / 100 THEN ttft_s END) AS p95_s FROM b GROUP BY device, policy),
kv AS (SELECT device, policy, avg(kv) AS kv FROM r GROUP BY device, policy)
SELECT xs.device, xs.policy, requests, printf('%.3f', med_s) AS ttft_p50_s, printf('%.3f', p95_s) AS ttft_p95_s,
       printf('%.2f', med_x) AS p50_x_oracle, printf('%.2f', p95_x) AS p95_x_oracle, printf('%.2f', kv.kv) AS kv_at_first
FROM xs JOIN ts USING (device, policy) JOIN kv USING (device, policy) ORDER BY xs.device, xs.policy;"
echo
echo "## Published WiKV ratios, reproduced: rtx5080-laptop, median TTFT of each policy / WiKV's"
sqlite3 -header -column "$db" "
WITH r AS (SELECT trace, policy, ttft_s, row_number() OVER (PARTITION BY trace, policy ORDER BY ttft_s) AS i,
                  count(*) OVER (PARTITION BY trace, policy) AS n
           FROM complete_requests WHERE device = 'rtx5080-laptop' AND status = 'ok'
             AND trace IN ('wifi-static-90s-seed1.txt', 'wifi-walk-120s-seed1.csv', 'mmwave-blockage-60s-seed1.csv')),
m AS (SELECT trace, policy, max(CASE WHEN i <= (n + 1) / 2 THEN ttft_s END) AS med FROM r GROUP BY trace, policy)
SELECT w.trace, printf('%.3f', w.med) AS wikv_s, printf('%.2f', c.med / w.med) AS cachegen_x,
       printf('%.2f', p.med / w.med) AS prefill_x, printf('%.2f', k.med / w.med) AS kivi2_x,
       printf('%.2f', h.med / w.med) AS hybrid_x
FROM m w JOIN m c ON c.trace = w.trace AND c.policy = 'cachegen' JOIN m p ON p.trace = w.trace AND p.policy = 'prefill'
     JOIN m k ON k.trace = w.trace AND k.policy = 'kivi2' JOIN m h ON h.trace = w.trace AND h.policy = 'hybrid'
WHERE w.policy = 'wikv' ORDER BY w.trace;"
echo
echo "## At equal quality: F1 from the measured quality table (docs/beyond-quality.grid)"
qdb="${db%.db}-quality.db"
./build/wikv sweep docs/beyond-quality.grid --db "$qdb" --no-progress >/dev/null
sqlite3 -header -column "$qdb" "
WITH r AS (SELECT device, CASE WHEN params LIKE '%threshold=0.95,%' THEN policy || '@0.95' ELSE policy END AS policy,
                  ttft_s, ttft_s / oracle_ttft_s AS x, f1 FROM complete_requests WHERE status = 'ok'),
a AS (SELECT device, policy, ttft_s, x, f1, row_number() OVER (PARTITION BY device, policy ORDER BY ttft_s) AS i,
             row_number() OVER (PARTITION BY device, policy ORDER BY x) AS j,
             count(*) OVER (PARTITION BY device, policy) AS n FROM r)
SELECT device, policy, max(n) AS requests, printf('%.3f', max(CASE WHEN i <= (n + 1) / 2 THEN ttft_s END)) AS ttft_p50_s,
       printf('%.3f', max(CASE WHEN i <= (n * 95 + 99) / 100 THEN ttft_s END)) AS ttft_p95_s,
       printf('%.2f', max(CASE WHEN j <= (n + 1) / 2 THEN x END)) AS p50_x_oracle, printf('%.3f', avg(f1)) AS f1_mean
FROM a GROUP BY device, policy ORDER BY device, policy;"
