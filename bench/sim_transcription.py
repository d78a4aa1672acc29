#!/usr/bin/env python3
"""Plain Python transcription of wikv's simulated timeline, the baseline of bench_sim_speed.

Same model as the C simulator, statement by statement: exact trace queries (net/trace.c), the link
model (net/link.c), the session loop (sim/session.c) over a (time, sequence) event heap, the device
roofline (models/device.c) and the receiver/sender halves of the policies full, kivi2, cachegen,
prefill and wikv (sim/policies/), every step passing the confidence test (no quality table).

usage: sim_transcription.py CASES_FILE [SECONDS]
CASES_FILE is written by bench_sim_speed: per case the trace, link, model, device, policy parameters,
plan unit sizes and request offsets with the TTFT the C simulator computed. For each case this
recomputes every TTFT, then times repeated requests for about SECONDS of CPU time, and prints
    result POLICY TRACE REQUESTS_PER_SECOND MAX_RELATIVE_DIFFERENCE
"""
import bisect
import heapq
import math
import sys
import time

PACKET = 1500.0
EV_SENDER, EV_ARRIVAL, EV_COMPUTE_DONE, EV_TIMER = 1, 2, 3, 4
US_PLANNED, US_SENT, US_ARRIVED, US_USABLE = 0, 1, 2, 3
UNIT_KV, UNIT_TEXT = 0, 1
ACT_WAIT, ACT_DECODE_KV, ACT_PREFILL, ACT_EMIT, ACT_DONE = 0, 1, 2, 3, 4
SEND_LATER, SEND_DONE = -1, -2


class Trace:
    def __init__(self, kind, period, t, rate):
        self.kind, self.period, self.t, self.rate, self.n = kind, period, t, rate, len(t)
        if kind == "capacity":
            cum = [0.0]
            for i in range(self.n):
                end = t[i + 1] if i + 1 < self.n else period
                cum.append(cum[i] + rate[i] * (end - t[i]))
        else:
            cum = [PACKET * i for i in range(self.n + 1)]
        self.cum = cum

    def bytes_within_period(self, r):
        below = bisect.bisect_left(self.t, r)
        if self.kind != "capacity":
            return self.cum[below]
        if below == 0:
            return 0.0
        i = below - 1
        return self.cum[i] + self.rate[i] * (r - self.t[i])

    def first_opportunity_at_or_after(self, t):
        loops = math.floor(t / self.period)
        r = t - loops * self.period
        index = loops * self.n + bisect.bisect_left(self.t, r)
        if r <= 0 and loops > 0:
            index -= self.n - bisect.bisect_left(self.t, self.period)
        return index

    def bytes_before(self, t):
        if t <= 0:
            return 0.0
        if self.kind != "capacity":
            return self.first_opportunity_at_or_after(t) * PACKET
        loops = math.floor(t / self.period)
        r = t - loops * self.period
        return loops * self.cum[self.n] + self.bytes_within_period(r)

    def time_to_deliver(self, t0, nbytes):
        if t0 < 0:
            t0 = 0.0
        if not nbytes > 0:
            return t0
        if self.kind != "capacity":
            packets = math.ceil(nbytes / PACKET)
            last = self.first_opportunity_at_or_after(t0) + packets - 1
            loops = math.floor(last / self.n)
            return loops * self.period + self.t[int(last - loops * self.n)]
        per_period = self.cum[self.n]
        target = self.bytes_before(t0) + nbytes
        loops = math.floor(target / per_period)
        rem = target - loops * per_period
        if rem <= 0 and loops > 0:
            loops -= 1
            rem += per_period
        lo, hi = 0, self.n - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if self.cum[mid + 1] >= rem:
                hi = mid
            else:
                lo = mid + 1
        within = (rem - self.cum[lo]) / self.rate[lo] if self.rate[lo] > 0 else 0.0
        t = loops * self.period + self.t[lo] + within
        return t if t > t0 else t0


class Link:
    def __init__(self, trace, p, offset):
        self.trace, self.p, self.offset = trace, p, offset
        self.epoch_start, self.epoch_bytes, self.free_at = offset, 0.0, -math.inf

    def wire_bytes(self, payload):
        b = float(payload) + self.p["unit_header"]
        frames = math.ceil(b / self.p["frame_payload"]) if self.p["frame_payload"] > 0 else 0
        return b + frames * self.p["frame_overhead"]

    def send(self, t, payload):
        wire = self.wire_bytes(payload)
        if t > self.free_at:
            self.epoch_start = t + self.offset
            self.epoch_bytes = 0.0
        self.epoch_bytes += wire
        done = self.trace.time_to_deliver(self.epoch_start, self.epoch_bytes) - self.offset
        self.free_at = done
        return done, done + self.p["one_way_delay"]


class Roofline:
    def __init__(self, m, d):
        self.m, self.d = m, d
        L, H, KV, hd, hid, inter, vocab = (m[k] for k in ("layers", "heads", "kv_heads", "head_dim", "hidden",
                                                           "intermediate", "vocab"))
        q = float(hid) * H * hd
        kv = 2.0 * hid * KV * hd
        o = float(H) * hd * hid
        mlp = 3.0 * hid * inter
        self.per_layer = q + kv + o + mlp + 2.0 * hid

    def kv_bytes_per_token(self, bits):
        m = self.m
        return float(m["layers"]) * float(2 * m["kv_heads"] * m["head_dim"]) * bits / 8.0

    def roofline(self, flops, ceff, nbytes, meff):
        d = self.d
        return max(flops / (d["peak"] * ceff), nbytes / (d["mem_bw"] * meff)) + d["overhead"]

    def attention_flops(self, chunk, past):
        m = self.m
        keys_seen = chunk * past + chunk * (chunk + 1) / 2
        return 4.0 * m["layers"] * m["heads"] * float(m["head_dim"]) * keys_seen

    def prefill_s(self, chunk, past):
        m, d = self.m, self.d
        layer_params = m["layers"] * self.per_layer
        head_params = float(m["vocab"]) * m["hidden"]
        flops = 2.0 * layer_params * chunk + self.attention_flops(float(chunk), float(past)) + 2.0 * head_params
        nbytes = 2.0 * (layer_params + head_params) + self.kv_bytes_per_token(16) * (float(past) + chunk)
        return self.roofline(flops, d["prefill_eff"], nbytes, d["decode_eff"])

    def decode_s(self, context, kv_bytes_per_token):
        m, d = self.m, self.d
        params = m["layers"] * self.per_layer + float(m["vocab"]) * m["hidden"]
        flops = 2.0 * params + self.attention_flops(1.0, float(context))
        nbytes = 2.0 * params + kv_bytes_per_token * (float(context) + 1)
        return self.roofline(flops, d["decode_eff"], nbytes, d["decode_eff"])

    def kv_decode_s(self, out_bytes):
        return out_bytes / self.d["kv_decode"]

    def h2d_s(self, nbytes):
        return nbytes / self.d["h2d"] if self.d["h2d"] > 0 else 0.0


class View:
    pass


class Action:
    __slots__ = ("kind", "count", "tokens", "position", "kv_bytes_per_token", "force", "wake_at")

    def __init__(self, position):
        self.kind, self.count, self.tokens, self.position = ACT_WAIT, 0, 0, position
        self.kv_bytes_per_token, self.force, self.wake_at = 0.0, 0, -1.0


def next_in_order(v):
    return v.n_sent if v.n_sent < v.plan_n else SEND_DONE


def decode_arrived(v, a):
    if v.n_arrived <= v.n_usable:
        return False
    a.kind = ACT_DECODE_KV
    a.count = v.n_arrived - v.n_usable
    return True


class Full:
    def __init__(self, param, case):
        self.fp16 = case.roof.kv_bytes_per_token(16)

    def start(self):
        pass

    def next_unit(self, v):
        return next_in_order(v)

    def decide(self, v, a):
        if decode_arrived(v, a):
            return
        if v.n_usable == v.plan_n:
            a.kind = ACT_EMIT
            a.kv_bytes_per_token = self.fp16
            return
        a.kind = ACT_WAIT


class Kivi(Full):
    def __init__(self, param, case):
        self.fp16 = float(sum(u[0] for u in case.units)) / case.context  # decode reads the quantized cache


class CacheGen:
    def __init__(self, param, case):
        self.p, self.case = param, case
        self.chunks = (case.context + int(param["chunk"]) - 1) // int(param["chunk"])
        self.levels = len(case.units) // self.chunks
        self.fp16 = case.roof.kv_bytes_per_token(16)

    def start(self):
        self.next_chunk = 0

    def remaining_bytes(self, c, level):
        units, L = self.case.units, self.levels
        b = 0.0
        for i in range(c, self.chunks):
            b += float(units[i * L + level][0])
        return b

    def next_unit(self, v):
        p = self.p
        if self.next_chunk >= self.chunks:
            return SEND_DONE
        lo, hi = int(p["min_level"]), int(p["max_level"])
        if hi < lo:
            hi = lo
        level = int(p["first_level"])
        if v.est_bw > 0:
            budget_end = v.stream_start + p["slo"] * v.context / 8192.0
            left = budget_end - v.now
            level = lo
            for k in range(hi, lo - 1, -1):
                if left > 0 and self.remaining_bytes(self.next_chunk, k) / v.est_bw <= left:
                    level = k
                    break
        level = min(max(level, lo), hi)
        idx = self.next_chunk * self.levels + level
        self.next_chunk += 1
        return idx

    def decide(self, v, a):
        if decode_arrived(v, a):
            return
        if v.kv_values_usable >= v.kv_values_total:
            a.kind = ACT_EMIT
            a.kv_bytes_per_token = self.fp16
            return
        a.kind = ACT_WAIT


class Prefill:
    def __init__(self, param, case):
        self.chunk = int(param["chunk"])
        self.fp16 = case.roof.kv_bytes_per_token(16)

    def start(self):
        pass

    def next_unit(self, v):
        return next_in_order(v)

    def decide(self, v, a):
        if v.tokens_prefilled >= v.context:
            a.kind = ACT_EMIT
            a.kv_bytes_per_token = self.fp16
            return
        remaining = v.context - v.tokens_prefilled
        available = v.text_tokens_arrived - v.tokens_prefilled
        want = min(remaining, self.chunk)
        if available >= want:
            a.kind = ACT_PREFILL
            a.tokens = want
        else:
            a.kind = ACT_WAIT


class Wikv:
    def __init__(self, param, case):
        self.p = param
        self.fp16 = case.roof.kv_bytes_per_token(16)

    def start(self):
        self.next_check = self.p["threshold"]
        self.attempted = False

    def next_unit(self, v):
        return next_in_order(v)

    def deadline(self, v):
        p = self.p
        if v.tokens_emitted == 0:
            d = p["ttft_deadline"] * v.context / 8192.0
            return v.stream_start + d if d > 0 else math.inf
        return v.last_token_at + p["token_deadline"] if p["token_deadline"] > 0 else math.inf

    def decide(self, v, a):
        fraction = v.kv_values_usable / v.kv_values_total
        if self.attempted:
            self.attempted = False
            self.next_check = max(self.next_check, fraction) + self.p["step"]
        if decode_arrived(v, a):
            return
        a.kv_bytes_per_token = self.fp16
        due = self.deadline(v)
        if fraction >= 1.0 or v.now >= due:
            a.kind = ACT_EMIT
            a.force = 1
            return
        if fraction >= self.next_check:
            a.kind = ACT_EMIT
            self.attempted = True
            return
        a.kind = ACT_WAIT
        a.wake_at = due if math.isfinite(due) else -1.0


POLICIES = {"full": Full, "kivi2": Kivi, "kivi4": Kivi, "cachegen": CacheGen, "prefill": Prefill, "wikv": Wikv}


def run_request(case, policy, offset):
    """One request: the session loop of sim/session.c with the virtual clock and trace link of sim/sim.c."""
    units, n, roof = case.units, len(case.units), case.roof
    link = Link(case.trace, case.link, offset)
    heap, seq = [], 0
    now = 0.0
    state = [US_PLANNED] * n
    order = []
    v = View()
    v.now, v.context, v.plan_n = 0.0, case.context, n
    v.kv_values_total = case.kv_values_total
    v.n_sent = v.n_arrived = v.n_usable = 0
    v.bytes_sent = v.bytes_arrived = 0
    v.kv_values_usable = 0.0
    v.est_bw = 0.0
    v.stream_start = case.link["request_delay"]
    v.text_tokens_arrived = v.tokens_prefilled = v.tokens_emitted = 0
    v.last_token_at = 0.0
    v.sender_done = False
    policy.start()
    decode_cursor = 0
    pending = []
    busy, sender_idle, done, first_done = False, False, False, False
    current, timer_at = None, math.nan
    ttft = math.nan

    def schedule(t, typ, arg):
        nonlocal seq
        heapq.heappush(heap, (t if t >= now else now, seq, typ, arg))
        seq += 1

    def sender_step():
        nonlocal sender_idle
        idx = policy.next_unit(v)
        if idx < 0 or idx >= n or state[idx] != US_PLANNED:
            sender_idle = True
            v.sender_done = idx == SEND_DONE
            return
        nbytes = units[idx][0]
        state[idx] = US_SENT
        v.n_sent += 1
        v.bytes_sent += nbytes
        next_at, arrival = link.send(v.now, nbytes)
        schedule(arrival, EV_ARRIVAL, idx)
        dt = next_at - v.now
        if dt > 0 and nbytes > 0:
            rate = float(nbytes) / dt
            v.est_bw = 0.7 * v.est_bw + 0.3 * rate if v.est_bw > 0 else rate
        sender_idle = False
        schedule(next_at, EV_SENDER, 0)

    def on_arrival(idx):
        u = units[idx]
        order.append(idx)
        v.n_arrived += 1
        v.bytes_arrived += u[0]
        if u[1] == UNIT_TEXT:
            state[idx] = US_USABLE
            v.n_usable += 1
            v.text_tokens_arrived += u[5]
        else:
            state[idx] = US_ARRIVED

    def finish_action(accepted):
        nonlocal busy, first_done, ttft, pending
        a = current
        if a.kind == ACT_DECODE_KV:
            for u in pending:
                state[u] = US_USABLE
                v.n_usable += 1
                v.kv_values_usable += units[u][2]
        elif a.kind in (ACT_PREFILL, ACT_EMIT):
            emit = True
            if a.kind == ACT_PREFILL:
                v.tokens_prefilled += a.tokens
                if a.position + a.tokens >= v.context and v.tokens_emitted == 0:
                    accepted = 1
                else:
                    emit = False
            if emit and accepted:
                v.tokens_emitted += 1
                v.last_token_at = v.now
                if not first_done:
                    first_done = True
                    ttft = v.now
        busy = False
        pending = []

    def receiver_step():
        nonlocal busy, current, done, pending, decode_cursor, timer_at, wait_until
        a = Action(v.tokens_prefilled)
        policy.decide(v, a)
        if a.kind == ACT_DONE:
            done = True
            return
        if a.kind == ACT_WAIT:
            # the policies' waits ignore the sender (as wait_ignores_sender in C): they hold over its turns
            wait_until = a.wake_at if a.wake_at >= 0 else math.inf
            if a.wake_at > v.now and a.wake_at != timer_at:
                timer_at = a.wake_at
                schedule(a.wake_at, EV_TIMER, 0)
            return
        if a.kind == ACT_DECODE_KV:
            i = decode_cursor
            while i < v.n_arrived and len(pending) < a.count:
                u = order[i]
                i += 1
                if state[u] == US_ARRIVED:
                    pending.append(u)
            decode_cursor = i
            seconds = 0.0
            for u in pending:
                seconds += roof.h2d_s(float(units[u][0])) + roof.kv_decode_s(units[u][3])
        elif a.kind == ACT_PREFILL:
            seconds = roof.prefill_s(a.tokens, a.position)
        else:
            seconds = roof.decode_s(v.context + v.tokens_emitted, a.kv_bytes_per_token)
        current = a
        busy = True
        wait_until = -math.inf
        schedule(v.now + seconds, EV_COMPUTE_DONE, 1)

    wait_until = -math.inf
    schedule(case.link["request_delay"], EV_SENDER, 0)
    while not done:
        if not heap:
            break
        t, _, typ, arg = heapq.heappop(heap)
        now = t
        v.now = t
        if t > 86400.0:
            break
        if typ == EV_SENDER:
            sender_step()
        elif typ == EV_ARRIVAL:
            on_arrival(arg)
        elif typ == EV_COMPUTE_DONE:
            finish_action(arg)
        elif typ == EV_TIMER and t >= timer_at:
            timer_at = math.nan
        if sender_idle and not v.sender_done and typ != EV_SENDER:
            sender_step()
        if not busy and v.tokens_emitted < case.output_tokens and not (typ == EV_SENDER and now < wait_until):
            receiver_step()
        if v.tokens_emitted >= case.output_tokens and not busy:
            done = True
    return ttft


class Case:
    pass


def read_cases(path):
    cases = []
    with open(path) as f:
        lines = iter(f.read().split("\n"))
        for line in lines:
            if not line.startswith("case "):
                continue
            c = Case()
            _, c.policy, c.trace_name = line.split()
            _, kind, period, count = next(lines).split()
            t, rate = [], []
            for _ in range(int(count)):
                a, b = next(lines).split()
                t.append(float(a))
                rate.append(float(b))
            c.trace = Trace(kind, float(period), t, rate)
            x = next(lines).split()
            c.link = {"one_way_delay": float(x[1]), "request_delay": float(x[2]), "frame_payload": int(x[3]),
                      "frame_overhead": int(x[4]), "unit_header": int(x[5])}
            x = [int(s) for s in next(lines).split()[1:]]
            model = dict(zip(("layers", "heads", "kv_heads", "head_dim", "hidden", "intermediate", "vocab"), x))
            x = [float(s) for s in next(lines).split()[1:]]
            device = dict(zip(("peak", "mem_bw", "prefill_eff", "decode_eff", "kv_decode", "h2d", "overhead"), x))
            c.roof = Roofline(model, device)
            _, context, output = next(lines).split()
            c.context, c.output_tokens = int(context), int(output)
            _, name, n_params = next(lines).split()
            c.param = {}
            for _ in range(int(n_params)):
                k, val = next(lines).split()
                c.param[k] = float(val)
            _, n_units, kv_total, _imp = next(lines).split()
            c.kv_values_total = float(kv_total)
            c.units = []
            for _ in range(int(n_units)):
                x = next(lines).split()
                # bytes, kind, values, decoded_bytes, importance, token_count, level
                c.units.append((int(x[0]), int(x[1]), float(x[2]), float(x[3]), float(x[4]), int(x[5]), int(x[6])))
            c.requests = []
            for _ in range(int(next(lines).split()[1])):
                a, b = next(lines).split()
                c.requests.append((float(a), float(b)))
            cases.append(c)
    return cases


def main():
    path = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    for c in read_cases(path):
        policy = POLICIES[c.policy](c.param, c)
        worst = 0.0
        for offset, want in c.requests:
            got = run_request(c, policy, offset)
            rel = abs(got - want) / abs(want) if want != 0 else abs(got)
            if not rel <= worst:
                worst = rel if rel == rel else math.inf
        done, start = 0, time.process_time()
        while True:
            for offset, _ in c.requests:
                run_request(c, policy, offset)
            done += len(c.requests)
            elapsed = time.process_time() - start
            if elapsed >= seconds:
                break
        print("result %s %s %.3f %.3e" % (c.policy, c.trace_name, done / elapsed, worst), flush=True)


if __name__ == "__main__":
    main()
