--[[
  Applies one batch of a recorded draw (SQL holds the drawn order) to the waiting line.
  Idempotent: a fan whose queue token hash entry exists already has a place here (applied
  before, or newer than this draw) and is left alone. Batches come in entry order, so the line
  never has a gap that admission could pass over.

  KEYS[1] queue meta hash   KEYS[2] waiting zset   KEYS[3] seen hash   KEYS[4] queue token hash
  KEYS[5] pre-queue hash
  ARGV[1] now (ms)   ARGV[2] last entry number of the draw   ARGV[3..] userId, jti, seq triples

  Returns {code, applied}   Codes: 0 ok, 11 queue not loaded
]]
local rcall = redis.call
local metaKey, waitKey, seenKey, tokenKey, preKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now, lastSeq = ARGV[1], tonumber(ARGV[2])

if rcall('EXISTS', metaKey) == 0 then return {11} end
if (tonumber(rcall('HGET', metaKey, 'lastSeq')) or 0) < lastSeq then rcall('HSET', metaKey, 'lastSeq', lastSeq) end
local applied = 0
for i = 3, #ARGV, 3 do
  local user, jti, seq = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if rcall('HSETNX', tokenKey, user, jti .. ':' .. seq) == 1 then
    rcall('ZADD', waitKey, 'NX', seq, user)
    rcall('HSET', seenKey, user, now)
    applied = applied + 1
  end
  rcall('HDEL', preKey, user)
end
local untilMs = rcall('PEXPIRETIME', metaKey)
if untilMs > 0 then
  for _, key in ipairs({waitKey, seenKey, tokenKey}) do
    if rcall('PTTL', key) == -1 then rcall('PEXPIREAT', key, untilMs) end
  end
end
return {0, applied}
