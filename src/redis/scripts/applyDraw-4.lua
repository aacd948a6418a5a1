--[[
  Applies one batch of a recorded draw (SQL holds the drawn order) to the waiting line.
  Idempotent: a fan whose queue token hash entry exists already has a place here (applied
  before, or newer than this draw) and is left alone. Batches come in entry order, so the line
  never has a gap that admission could pass over; a place put back behind the line's head (Redis
  lost part of an applied draw after admission moved on) moves the head back to it.

  KEYS[1] queue meta hash   KEYS[2] line string (see joinQueue)   KEYS[3] queue token hash
  KEYS[4] pre-queue hash
  ARGV[1] now (ms)   ARGV[2] last entry number of the draw   ARGV[3..] userId, jti, seq triples

  Returns {code, applied}   Codes: 0 ok, 11 queue not loaded
]]
local rcall = redis.call
local metaKey, lineKey, tokenKey, preKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, lastSeq = ARGV[1], tonumber(ARGV[2])

if rcall('EXISTS', metaKey) == 0 then return {11} end
local m = rcall('HMGET', metaKey, 'lastSeq', 'lineHead')
if (tonumber(m[1]) or 0) < lastSeq then rcall('HSET', metaKey, 'lastSeq', lastSeq) end
local head = tonumber(m[2]) or 0
local newHead = head
local applied, added = 0, 0
for i = 3, #ARGV, 3 do
  local user, jti, seq = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  if rcall('HSETNX', tokenKey, user, jti .. struct.pack('>I4', seq)) == 1 then
    local bit = seq * 80
    -- The waiting count follows the slots: a slot that still holds this fan is not a new one.
    if rcall('BITFIELD_RO', lineKey, 'GET', 'u32', bit)[1] ~= tonumber(user) then added = added + 1 end
    rcall('BITFIELD', lineKey, 'SET', 'u32', bit, user, 'SET', 'u48', bit + 32, now)
    if newHead >= seq then newHead = seq - 1 end
    applied = applied + 1
  end
  rcall('HDEL', preKey, user)
end
if added > 0 then rcall('HINCRBY', metaKey, 'waiting', added) end
if newHead < head then rcall('HSET', metaKey, 'lineHead', newHead) end
local untilMs = rcall('PEXPIRETIME', metaKey)
if untilMs > 0 then
  for _, key in ipairs({lineKey, tokenKey}) do
    if rcall('PTTL', key) == -1 then rcall('PEXPIREAT', key, untilMs) end
  end
end
return {0, applied}
