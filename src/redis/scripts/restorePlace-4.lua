--[[
  Puts a place that SQL proves live back into the waiting line or the active set, unless Redis
  knows the user under another token already (its state is then newer). Used by the rebuild's
  catch-up and by lost-place recovery; a waiting place may lie behind the line's head, which
  then moves back so that admission reaches it.

  KEYS[1] queue meta hash   KEYS[2] line string (see joinQueue)   KEYS[3] active zset
  KEYS[4] queue token hash
  ARGV[1] userId   ARGV[2] the token record (queueTokenRecord.encode in codecs.ts)   ARGV[3] seq   ARGV[4] now (ms)
  ARGV[5] active-until (ms; 0 for a waiting place)

  Returns {code, restored (1 when the user's record is now this one)}   Codes: 0 ok
]]
local rcall = redis.call
local metaKey, lineKey, activeKey, tokenKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local user, record, seq, now, activeUntil = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])

rcall('HSETNX', tokenKey, user, record)
if rcall('HGET', tokenKey, user) ~= record then return {0, 0} end
if activeUntil > 0 then
  rcall('ZADD', activeKey, 'NX', activeUntil, user)
  return {0, 1}
end
local bit = seq * 80
if rcall('BITFIELD_RO', lineKey, 'GET', 'u32', bit)[1] ~= tonumber(user) then
  rcall('BITFIELD', lineKey, 'SET', 'u32', bit, user, 'SET', 'u48', bit + 32, now)
  rcall('HINCRBY', metaKey, 'waiting', 1)
  local m = rcall('HMGET', metaKey, 'lineHead', 'lastSeq')
  if (tonumber(m[1]) or 0) >= seq then rcall('HSET', metaKey, 'lineHead', seq - 1) end
  if (tonumber(m[2]) or 0) < seq then rcall('HSET', metaKey, 'lastSeq', seq) end
  local untilMs = rcall('PEXPIRETIME', metaKey)
  if untilMs > 0 and rcall('PTTL', lineKey) == -1 then rcall('PEXPIREAT', lineKey, untilMs) end
end
return {0, 1}
