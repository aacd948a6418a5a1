--[[
  Gives a live hold back: the seat is free at once and SQL learns of it through the stream.

  KEYS[1] reservation hash   KEYS[2] the seat's hold string ("rid|userId")   KEYS[3] holds zset
  KEYS[4] the user's holds zset   KEYS[5] write-behind stream
  ARGV[1] userId   ARGV[2] reservation id   ARGV[3] now (ms)

  Returns {code}
  Codes: 0 released, 5 no such reservation, 9 someone else's, 10 already paid,
         8 expired or already released
]]
local rcall = redis.call
local reservationKey, holdKey, holdsKey, userHoldsKey, streamKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local user, rid, now = ARGV[1], ARGV[2], tonumber(ARGV[3])

local r = rcall('HMGET', reservationKey, 'u', 'sc', 'n', 'p', 'x', 'st')
if not r[1] then return {5} end
if r[1] ~= user then return {9} end
if r[6] == 'paid' then return {10} end
if r[6] ~= 'held' or tonumber(r[5]) <= now or rcall('GET', holdKey) ~= rid .. '|' .. user then return {8} end

rcall('DEL', holdKey)
rcall('ZREM', holdsKey, r[3])
rcall('ZREM', userHoldsKey, rid)
rcall('HSET', reservationKey, 'st', 'released')
rcall('XADD', streamKey, '*', 'e', 'release', 'r', rid, 'u', user, 'sc', r[2], 'n', r[3], 'p', r[4], 'x', r[5], 't', now)
return {0}
