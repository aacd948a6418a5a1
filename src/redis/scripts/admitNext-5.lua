--[[
  One admission tick of one concert: frees the slots of active users whose time is up, then
  moves waiting users to the active set in entry order, skipping those whose heartbeat lapsed.
  Only one caller acts per tick id, so several instances may tick the same concert safely.

  KEYS[1] queue meta hash   KEYS[2] line string (see joinQueue)   KEYS[3] active zset
  KEYS[4] queue token hash  KEYS[5] write-behind stream
  ARGV[1] now (ms)   ARGV[2] tick id (monotonic)   ARGV[3] grace (ms)   ARGV[4] tick length (ms)
  ARGV[5] most slots of the line examined in one tick (empty ones too)
  ARGV[6] wait-estimate window (ms)   ARGV[7] ticks apart beyond which the estimate learns nothing
  ARGV[8] age buckets of the active set
  ARGV[9] most lapsed active users freed in one tick (the rest wait for the next ticks)
  ARGV[10], ARGV[11...] (optional) '1' and the entry numbers the caller has recorded in SQL as
  admitted (peekAdmissions-3.lua chose them): only those are admitted, and the tick stops at the
  first live entry not among them, which stays first in line. Without ARGV[10] any live entry
  within the budget is admitted.

  Meta fields for the wait estimate (src/modules/queue/eta.ts, stepEtaState: the same step in
  TypeScript for SQL mode): etaState (JSON: the tick's time, active slots per age bucket, decayed
  releases and slot-seconds per age bucket, decayed positions passed and admissions), and the two
  numbers joins and polls read: etaMeanHold (s) and etaSpread (positions per admission).
]]
local rcall = redis.call
local metaKey, lineKey, activeKey, tokenKey, streamKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now, tick, grace = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tickMs, maxScan = tonumber(ARGV[4]), tonumber(ARGV[5])
local etaWindow, etaGapTicks, etaBuckets = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local maxExpire = tonumber(ARGV[9])
local gated = ARGV[10] == '1'
local approved = {}
for i = 11, #ARGV do approved[tonumber(ARGV[i])] = true end

local m = rcall('HMGET', metaKey, 'lastTick', 'paused', 'maxActive', 'admitPerSecond', 'activeTtl', 'rate', 'credit', 'lastAdmitted',
  'loadingUntil', 'etaState', 'lineHead', 'lastSeq', 'waiting', 'loadedAt')
if not m[3] then return {11} end
-- The rebuild is reloading this concert from SQL: an admission now could be overwritten.
if now < (tonumber(m[9]) or 0) then return {14} end
if (tonumber(m[1]) or 0) >= tick then return {12} end
rcall('HSET', metaKey, 'lastTick', tick)

-- At most maxExpire lapsed slots are freed per tick, so one tick's work stays bounded after a
-- stall; those left over are past their time, so they count as free below and a poll or a
-- later tick frees them.
local expired = rcall('ZRANGEBYSCORE', activeKey, '-inf', now, 'LIMIT', 0, maxExpire)
for _, user in ipairs(expired) do
  local token = rcall('HGET', tokenKey, user)
  local seq = 0
  if token then seq = struct.unpack('>I4', token, #token - 3) end
  rcall('HDEL', tokenKey, user)
  rcall('ZREM', activeKey, user)
  rcall('XADD', streamKey, '*', 'e', 'expire', 'u', user, 's', seq, 't', now)
end

local activeCount = rcall('ZCOUNT', activeKey, '(' .. now, '+inf')
local waitingCount = tonumber(m[13]) or 0

-- The wait estimate (see eta.ts): per age bucket of the active set, the slots freed since the last
-- tick (paid, left, timed out) and the slot-seconds they came from; entry numbers passed per
-- admission. Called once the tick's admissions are done. Ticks too far apart (the first after a
-- load, a stretch in SQL mode) teach nothing: their counts would be stale.
local function etaStep(positions, admittedNow)
  local ttlMs = tonumber(m[5]) * 1000
  local width = ttlMs / etaBuckets
  -- Slots held between b and b + 1 widths at time `at`: activeUntil in (lo, hi].
  local function inBucket(at, b)
    return rcall('ZCOUNT', activeKey, '(' .. (at + ttlMs - (b + 1) * width), at + ttlMs - b * width)
  end
  local st
  if m[10] then st = cjson.decode(m[10]) end
  if st then
    local dt = now - st.at
    if dt > 0 and dt <= etaGapTicks * tickMs then
      local w = math.exp(-dt / etaWindow)
      for b = 1, etaBuckets do
        -- Slots admitted this tick are younger than every range anchored at the last tick.
        local released = (st.prev[b] or 0) - inBucket(st.at, b - 1)
        if released < 0 then released = 0 end
        st.rel[b] = (st.rel[b] or 0) * w + released
        st.exp[b] = (st.exp[b] or 0) * w + (st.prev[b] or 0) * dt / 1000
      end
      st.pos = st.pos * w + positions
      st.adm = st.adm * w + admittedNow
    end
  else
    st = {prev = {}, rel = {}, exp = {}, pos = 0, adm = 0}
    for b = 1, etaBuckets do st.rel[b] = 0; st.exp[b] = 0 end
  end
  st.at = now
  for b = 1, etaBuckets do st.prev[b] = inBucket(now, b - 1) end
  -- Mean hold: survival through the age buckets seen; ages never seen hold to the end.
  local bucketS = width / 1000
  local hold, surviving = 0, 1
  for b = 1, etaBuckets do
    local hazard = 0
    if st.exp[b] > 0 then hazard = st.rel[b] / st.exp[b] end
    if hazard > 0 then
      local stay = math.exp(-hazard * bucketS)
      hold = hold + surviving * (1 - stay) / hazard
      surviving = surviving * stay
    else
      hold = hold + surviving * bucketS
    end
  end
  local spread = 1
  if st.adm >= 1 and st.pos > st.adm then spread = st.pos / st.adm end
  rcall('HSET', metaKey, 'etaState', cjson.encode(st), 'etaMeanHold', tostring(hold), 'etaSpread', tostring(spread))
end

if m[2] == '1' then
  etaStep(0, 0)
  return {0, 0, 0, #expired, activeCount, waitingCount}
end

local perTick = tonumber(m[4]) * tickMs / 1000
-- Credit carries the fraction of a budget such as 0.25 or 2.5 to the next tick; the cap (one
-- tick's budget rounded up) keeps an idle queue from saving up a burst.
local credit = math.min((tonumber(m[7]) or 0) + perTick, math.max(math.ceil(perTick), 1))
local budget = math.min(math.floor(credit), tonumber(m[3]) - activeCount)
local activeTtlMs = tonumber(m[5]) * 1000
local lastAdmitted = tonumber(m[8]) or 0
local firstPassed = lastAdmitted
local admitted, skipped, scanned = 0, 0, 0
-- The line is read from its head (the last slot examined) in chunks of 10-byte slots: user id
-- (u32) and last poll ms (u48), big-endian; an empty slot (left, lapsed) is all zeros.
local head, lastSeq = tonumber(m[11]) or 0, tonumber(m[12]) or 0
local CHUNK = 128
-- For one heartbeat grace after the queue was loaded again from SQL, a slot marked unknown
-- (user 0, poll time UNKNOWN_SLOT_SEEN: src/modules/queue/line.ts) may be a place whose record
-- was lost with the Redis that gave it out, and whose fan may still come back (adoptPlace, then
-- restorePlace fills the slot): admission stops there until then.
local holding = now < (tonumber(m[14]) or 0) + grace
-- Nobody waits: every slot past the head is empty, nothing to read.
if waitingCount <= 0 and not holding then head = math.max(head, lastSeq) end
local held = false
while not held and admitted < budget and scanned < maxScan and head < lastSeq do
  local n = math.min(CHUNK, lastSeq - head, maxScan - scanned)
  local raw = rcall('GETRANGE', lineKey, (head + 1) * 10, (head + n) * 10 + 9)
  local passed = 0
  for i = 1, n do
    if admitted >= budget then break end
    local o = (i - 1) * 10
    local b1, b2, b3, b4 = string.byte(raw, o + 1, o + 4)
    local seq = head + i
    local user = ((b1 or 0) * 256 + (b2 or 0)) * 65536 + (b3 or 0) * 256 + (b4 or 0)
    if user == 0 and holding and (string.byte(raw, o + 10) or 0) ~= 0 then
      held = true
      break
    end
    local live = false
    if user ~= 0 then
      local s1, s2, s3, s4, s5, s6 = string.byte(raw, o + 5, o + 10)
      live = now - (((((s1 * 256 + s2) * 256 + s3) * 256 + s4) * 256 + s5) * 256 + s6) <= grace
    end
    -- Not in SQL yet: this entry stays first in line, untouched, and the tick ends here.
    if live and gated and not approved[seq] then
      held = true
      break
    end
    passed = i
    if user ~= 0 then
      lastAdmitted = seq
      waitingCount = waitingCount - 1
      if live then
        local activeUntil = now + activeTtlMs
        rcall('ZADD', activeKey, activeUntil, user)
        rcall('XADD', streamKey, '*', 'e', 'admit', 'u', user, 's', seq, 't', now, 'x', activeUntil)
        admitted = admitted + 1
      else
        rcall('HDEL', tokenKey, user)
        -- 'skip', not 'lapse': the line has passed this entry, so SQL moves its last admitted entry.
        rcall('XADD', streamKey, '*', 'e', 'skip', 'u', user, 's', seq, 't', now)
        skipped = skipped + 1
      end
    end
  end
  if passed == 0 then break end
  -- The passed slots are emptied: the line's prefix holds zeros only.
  if #raw > 0 then rcall('SETRANGE', lineKey, (head + 1) * 10, string.rep('\0', math.min(passed * 10, #raw))) end
  head = head + passed
  scanned = scanned + passed
end

-- An active zset created by this tick takes the meta hash's lifetime, as joinQueue's keys do.
if admitted > 0 and rcall('PTTL', activeKey) == -1 then
  local untilMs = rcall('PEXPIRETIME', metaKey)
  if untilMs > 0 then rcall('PEXPIREAT', activeKey, untilMs) end
end

if budget > 0 then credit = credit - admitted end
if credit < 0 then credit = 0 end
-- Smoothed admissions per second, updated only while someone waits, so an empty line does not
-- make the next arrivals' estimate look endless.
local rate = tonumber(m[6]) or 0
if waitingCount > 0 then
  local observed = admitted * 1000 / tickMs
  if rate == 0 then rate = observed * 1000 else rate = math.floor(rate * 0.8 + observed * 200) end
end
rcall('HSET', metaKey, 'lastAdmitted', lastAdmitted, 'credit', tostring(credit), 'rate', rate, 'lineHead', head,
  'waiting', waitingCount)
if admitted > 0 then rcall('HINCRBY', metaKey, 'admittedTotal', admitted) end
etaStep(lastAdmitted - firstPassed, admitted)
return {0, admitted, skipped, #expired, activeCount + admitted, waitingCount}
