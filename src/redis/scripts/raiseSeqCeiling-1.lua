--[[
  Raises a concert's entry-number ceiling, the highest entry number joinQueue may give out, to
  what SQL has just reserved (reserveEntryNumbers). Never lowers it. A queue that is not loaded
  is left alone: its load brings SQL's ceiling.

  KEYS[1] queue meta hash
  ARGV[1] ceiling reserved in SQL

  Returns {code, seqCeiling}. Codes: 0 ok, 11 queue not loaded
]]
local metaKey = KEYS[1]
local ceiling = tonumber(ARGV[1])
local meta = redis.call('HMGET', metaKey, 'admitPerSecond', 'seqCeiling')
if not meta[1] then return {11} end
local current = tonumber(meta[2]) or 0
if current < ceiling then
  redis.call('HSET', metaKey, 'seqCeiling', ceiling)
  current = ceiling
end
return {0, current}
