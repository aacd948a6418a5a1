--[[
  Checks a queue token for an endpoint: known and current, and (when asked) admitted.

  KEYS[1] queue token hash (user -> jti + entry number u32)   KEYS[2] active zset (user -> active-until ms)
  ARGV[1] userId   ARGV[2] jti   ARGV[3] now (ms)

  Returns {code, seq, activeUntil}   Codes: 0 active, 1 unknown or replaced token, 2 not admitted
]]
local rcall = redis.call
local tokenKey, activeKey = KEYS[1], KEYS[2]
local user, jti, now = ARGV[1], ARGV[2], tonumber(ARGV[3])

--- @include "checkQueueToken"
local seq = tokenSeq
local activeUntil = tonumber(rcall('ZSCORE', activeKey, user))
if activeUntil and activeUntil > now then return {0, seq, activeUntil} end
return {2, seq, 0}
