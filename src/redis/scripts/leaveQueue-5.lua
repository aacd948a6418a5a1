--[[
  A user leaves the waiting line or gives up the active slot; the slot frees at once.

  KEYS[1] queue meta hash   KEYS[2] line string   KEYS[3] active zset   KEYS[4] queue token hash
  KEYS[5] write-behind stream
  ARGV[1] userId   ARGV[2] jti   ARGV[3] now (ms)   ARGV[4] event name ('leave' | 'done')

  Returns {code, seq}   Codes: 0 ok, 1 unknown or replaced token
]]
local rcall = redis.call
local metaKey, lineKey, activeKey, tokenKey, streamKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local user, jti, now, event = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

--- @include "checkQueueToken"
local seq = tokenSeq

-- Empties the place's slot in the line (see joinQueue) when it is still this user's.
local bit = seq * 80
if rcall('BITFIELD_RO', lineKey, 'GET', 'u32', bit)[1] == tonumber(user) then
  rcall('BITFIELD', lineKey, 'SET', 'u32', bit, 0, 'SET', 'u48', bit + 32, 0)
  rcall('HINCRBY', metaKey, 'waiting', -1)
end
rcall('ZREM', activeKey, user)
rcall('HDEL', tokenKey, user)
rcall('XADD', streamKey, '*', 'e', event, 'u', user, 's', seq, 't', now)
return {0, seq}
