--[[
  One admission tick of one concert: frees the slots of active users whose time is up, then
  moves waiting users to the active set in entry order, skipping those whose heartbeat lapsed.
  Only one caller acts per tick id, so several instances may tick the same concert safely.

  KEYS[1] queue meta hash   KEYS[2] waiting zset   KEYS[3] active zset   KEYS[4] seen hash
  KEYS[5] queue token hash  KEYS[6] write-behind stream
  ARGV[1] now (ms)   ARGV[2] tick id (monotonic)   ARGV[3] grace (ms)   ARGV[4] tick length (ms)
  ARGV[5] most waiting entries examined in one tick
  ARGV[6] wait-estimate window (ms)   ARGV[7] ticks apart beyond which the estimate's sums learn nothing

  Meta fields for the wait estimate (see src/modules/queue/eta.ts, the same step in TypeScript):
  etaReleases, etaSlotSeconds, etaPositions, etaAdmissions (sums decayed by e^(-dt/window)),
  etaActive (the active count this tick left behind).

  Stream events: 'expire' (slot freed at its time), 'admit', 'skip' (passed over, heartbeat lapsed)
  Returns {code, admitted, skipped, expired, activeCount, waitingCount}
  Codes: 0 ok, 11 queue not loaded, 12 tick already taken by another caller, 14 being reloaded
]]
local rcall = redis.call
local metaKey, waitKey, activeKey, seenKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local tokenKey, streamKey = KEYS[5], KEYS[6]
local now, tick, grace = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tickMs, maxScan = tonumber(ARGV[4]), tonumber(ARGV[5])
local etaWindow, etaGapTicks = tonumber(ARGV[6]), tonumber(ARGV[7])

local m = rcall('HMGET', metaKey, 'lastTick', 'paused', 'maxActive', 'admitPerSecond', 'activeTtl', 'rate', 'credit', 'lastAdmitted',
  'loadingUntil', 'etaReleases', 'etaSlotSeconds', 'etaPositions', 'etaAdmissions', 'etaActive')
if not m[3] then return {11} end
-- The rebuild is reloading this concert from SQL: an admission now could be overwritten.
if now < (tonumber(m[9]) or 0) then return {14} end
if (tonumber(m[1]) or 0) >= tick then return {12} end
rcall('HSET', metaKey, 'lastTick', tick)

local expired = rcall('ZRANGEBYSCORE', activeKey, '-inf', now)
for _, user in ipairs(expired) do
  local token = rcall('HGET', tokenKey, user)
  local seq = 0
  if token then seq = string.sub(token, string.find(token, ':', 1, true) + 1) end
  rcall('HDEL', tokenKey, user)
  rcall('XADD', streamKey, '*', 'e', 'expire', 'u', user, 's', seq, 't', now)
end
if #expired > 0 then rcall('ZREMRANGEBYSCORE', activeKey, '-inf', now) end

local activeCount = rcall('ZCARD', activeKey)
local waitingCount = rcall('ZCARD', waitKey)

-- The wait estimate's sums: slots freed since the last tick (payments, leaves, timeouts) over the
-- slot-seconds they came from, and entry numbers passed per admission. Ticks too far apart (the
-- first after a load, a stretch in SQL mode) teach nothing: their counts would be stale.
local function etaStep(positions, admittedNow, activeAfter)
  local dt = tick - (tonumber(m[1]) or 0)
  local prevActive = tonumber(m[14])
  if prevActive and dt > 0 and dt <= etaGapTicks * tickMs then
    local w = math.exp(-dt / etaWindow)
    local released = prevActive - activeCount
    if released < 0 then released = 0 end
    rcall('HSET', metaKey,
      'etaReleases', tostring((tonumber(m[10]) or 0) * w + released),
      'etaSlotSeconds', tostring((tonumber(m[11]) or 0) * w + prevActive * dt / 1000),
      'etaPositions', tostring((tonumber(m[12]) or 0) * w + positions),
      'etaAdmissions', tostring((tonumber(m[13]) or 0) * w + admittedNow))
  end
  rcall('HSET', metaKey, 'etaActive', activeAfter)
end

if m[2] == '1' then
  etaStep(0, 0, activeCount)
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

while admitted < budget and scanned < maxScan do
  local popped = rcall('ZPOPMIN', waitKey, math.min(budget - admitted, maxScan - scanned))
  if #popped == 0 then break end
  for i = 1, #popped, 2 do
    local user, seq = popped[i], popped[i + 1]
    scanned = scanned + 1
    lastAdmitted = tonumber(seq)
    local seen = tonumber(rcall('HGET', seenKey, user))
    rcall('HDEL', seenKey, user)
    if seen and now - seen <= grace then
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
rcall('HSET', metaKey, 'lastAdmitted', lastAdmitted, 'credit', tostring(credit), 'rate', rate)
if admitted > 0 then rcall('HINCRBY', metaKey, 'admittedTotal', admitted) end
etaStep(lastAdmitted - firstPassed, admitted, activeCount + admitted)
return {0, admitted, skipped, #expired, activeCount + admitted, waitingCount - scanned}
