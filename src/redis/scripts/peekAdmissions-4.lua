--[[
  The entries the next admission tick of one concert would admit, without changing anything:
  the ticker records them in SQL first and then runs admitNext with this list, so that an
  admission is in SQL before any poll can see it in Redis. The budget and the heartbeat rule are
  admitNext-6.lua's, on the same `now`; keep the two in step.

  KEYS[1] queue meta hash   KEYS[2] waiting zset   KEYS[3] active zset   KEYS[4] seen hash
  ARGV[1] now (ms)   ARGV[2] tick id   ARGV[3] grace (ms)   ARGV[4] tick length (ms)
  ARGV[5] most waiting entries examined in one tick
  Returns {code, activeUntil, user1, seq1, user2, seq2, ...}; code as admitNext's.
]]
local rcall = redis.call
local metaKey, waitKey, activeKey, seenKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, tick, grace = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tickMs, maxScan = tonumber(ARGV[4]), tonumber(ARGV[5])

local m = rcall('HMGET', metaKey, 'lastTick', 'paused', 'maxActive', 'admitPerSecond', 'activeTtl', 'credit', 'loadingUntil')
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
local admitted = 0
local line = rcall('ZRANGE', waitKey, 0, maxScan - 1, 'WITHSCORES')
for i = 1, #line, 2 do
  local user = line[i]
  local seen = tonumber(rcall('HGET', seenKey, user))
  if seen and now - seen <= grace then
    out[#out + 1] = user
    out[#out + 1] = line[i + 1]
    admitted = admitted + 1
    if admitted >= budget then break end
  end
end
return out
