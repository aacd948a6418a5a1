--[[
  The entries the next admission tick of one concert would admit, without changing anything:
  the ticker records them in SQL first and then runs admitNext with this list, so that an
  admission is in SQL before any poll can see it in Redis. The budget and the heartbeat rule are
  admitNext-5.lua's, on the same `now`; keep the two in step.

  KEYS[1] queue meta hash   KEYS[2] line string (see joinQueue)   KEYS[3] active zset
  ARGV[1] now (ms)   ARGV[2] tick id   ARGV[3] grace (ms)   ARGV[4] tick length (ms)
  ARGV[5] most slots of the line examined in one tick (empty ones too)
  Returns {code, activeUntil, user1, seq1, user2, seq2, ...}; code as admitNext's.
]]
local rcall = redis.call
local metaKey, lineKey, activeKey = KEYS[1], KEYS[2], KEYS[3]
local now, tick, grace = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tickMs, maxScan = tonumber(ARGV[4]), tonumber(ARGV[5])

local m = rcall('HMGET', metaKey, 'lastTick', 'paused', 'maxActive', 'admitPerSecond', 'activeTtl', 'credit', 'loadingUntil',
  'lineHead', 'lastSeq', 'waiting', 'loadedAt')
if not m[3] then return {11} end
if now < (tonumber(m[7]) or 0) then return {14} end
if (tonumber(m[1]) or 0) >= tick then return {12} end
local activeUntil = now + tonumber(m[5]) * 1000
if m[2] == '1' then return {0, activeUntil} end

-- Slots whose time is up by `now` are freed by the tick before it admits.
local activeCount = rcall('ZCOUNT', activeKey, '(' .. now, '+inf')
local perTick = tonumber(m[4]) * tickMs / 1000
local credit = math.min((tonumber(m[6]) or 0) + perTick, math.max(math.ceil(perTick), 1))
local budget = math.min(math.floor(credit), tonumber(m[3]) - activeCount)

local out = {0, activeUntil}
if budget <= 0 then return out end
local admitted, scanned = 0, 0
local head, lastSeq = tonumber(m[8]) or 0, tonumber(m[9]) or 0
if (tonumber(m[10]) or 0) <= 0 then return out end
-- admitNext's hold after a reload: a slot marked unknown stops the tick for one grace.
local holding = now < (tonumber(m[11]) or 0) + grace
-- The same slots admitNext reads, in the same chunks (user id u32, last poll ms u48).
while admitted < budget and scanned < maxScan and head < lastSeq do
  local n = math.min(128, lastSeq - head, maxScan - scanned)
  local raw = rcall('GETRANGE', lineKey, (head + 1) * 10, (head + n) * 10 + 9)
  if #raw == 0 then break end
  for i = 1, n do
    local o = (i - 1) * 10
    local b1, b2, b3, b4 = string.byte(raw, o + 1, o + 4)
    local user = ((b1 or 0) * 256 + (b2 or 0)) * 65536 + (b3 or 0) * 256 + (b4 or 0)
    if user == 0 and holding and (string.byte(raw, o + 10) or 0) ~= 0 then return out end
    if user ~= 0 then
      local s1, s2, s3, s4, s5, s6 = string.byte(raw, o + 5, o + 10)
      if now - (((((s1 * 256 + s2) * 256 + s3) * 256 + s4) * 256 + s5) * 256 + s6) <= grace then
        out[#out + 1] = user
        out[#out + 1] = head + i
        admitted = admitted + 1
        if admitted >= budget then return out end
      end
    end
  end
  head = head + n
  scanned = scanned + n
end
return out
