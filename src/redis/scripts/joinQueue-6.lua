--[[
  Puts a user in a concert's waiting line, or hands back the place the user already has.

  KEYS[1] queue meta hash      KEYS[2] waiting zset (user -> entry number)
  KEYS[3] active zset (user -> active-until ms)   KEYS[4] seen hash (user -> last poll ms)
  KEYS[5] queue token hash (user -> "jti:seq")    KEYS[6] write-behind stream
  ARGV[1] userId   ARGV[2] jti of the new queue token   ARGV[3] now (ms)

  Returns {code, seq, status (0 waiting | 1 active), lastAdmitted, activeUntil, replacedJti,
           rate (admissions/s x1000), admitPerSecond, fresh (1 when a new place was taken)}
  Codes: 0 ok, 4 queue closed (paused), 11 queue not loaded
]]
local rcall = redis.call
local metaKey, waitKey, activeKey, seenKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local tokenKey, streamKey = KEYS[5], KEYS[6]
local user, jti, now = ARGV[1], ARGV[2], tonumber(ARGV[3])

local meta = rcall('HMGET', metaKey, 'paused', 'lastAdmitted', 'rate', 'admitPerSecond')
if not meta[4] then return {11} end
local lastAdmitted = tonumber(meta[2]) or 0
local rate = tonumber(meta[3]) or 0
local admitPerSecond = tonumber(meta[4])

local existing = rcall('HGET', tokenKey, user)
if existing then
  local sep = string.find(existing, ':', 1, true)
  local oldJti = string.sub(existing, 1, sep - 1)
  local seq = tonumber(string.sub(existing, sep + 1))
  local activeUntil = tonumber(rcall('ZSCORE', activeKey, user))
  local status = -1
  if activeUntil and activeUntil > now then
    status = 1
  elseif rcall('ZSCORE', waitKey, user) then
    status = 0
    activeUntil = 0
    rcall('HSET', seenKey, user, now)
  end
  if status >= 0 then
    rcall('HSET', tokenKey, user, jti .. ':' .. seq)
    return {0, seq, status, lastAdmitted, activeUntil, oldJti, rate, admitPerSecond, 0}
  end
end

if meta[1] == '1' then return {4} end

local seq = rcall('HINCRBY', metaKey, 'lastSeq', 1)
rcall('ZADD', waitKey, seq, user)
rcall('HSET', seenKey, user, now)
rcall('HSET', tokenKey, user, jti .. ':' .. seq)
rcall('XADD', streamKey, '*', 'e', 'join', 'u', user, 's', seq, 't', now)
local replaced = ''
if existing then replaced = string.sub(existing, 1, string.find(existing, ':', 1, true) - 1) end
return {0, seq, 0, lastAdmitted, 0, replaced, rate, admitPerSecond, 1}
