--[[
  Holds one seat for an admitted user. The queue token, the seat, the user's hold count and the
  user's ticket count (held + paid seats of the concert) are checked and the seat is taken in
  this one call, so exactly one of many racing users wins and no user passes either limit.
  A hold is live while its key exists and its expiry (the holds zset score) is after now.
  A seat the same user already holds live is answered with that hold (a retried request).

  KEYS[1] queue token hash (user -> jti + entry number u32)   KEYS[2] active zset (user -> active-until ms)
  KEYS[3] schedule hash   KEYS[4] seats hash (seat -> price)   KEYS[5] sold set
  KEYS[6] holds zset (seat -> expires ms)   KEYS[7] the seat's hold string ("rid|userId")
  KEYS[8] the user's holds zset (rid -> expires ms)   KEYS[9] reservation hash
  KEYS[10] write-behind stream   KEYS[11] the user's paid reservations of the concert (set of rids)
  ARGV[1] userId   ARGV[2] jti   ARGV[3] now (ms)   ARGV[4] schedule id   ARGV[5] seat number
  ARGV[6] reservation id   ARGV[7] hold ttl (ms)   ARGV[8] most live holds per user
  ARGV[9] keep the catalog keys until (ms)   ARGV[10] keep the reservation record this long after expiry (ms)
  ARGV[11] most tickets (live holds + paid seats) per user and concert

  Returns {0, price, expiresAt, reservationId, created (1 new hold, 0 the user's existing live hold)},
  otherwise {code, what}
  Codes: 1 unknown or replaced token, 2 not admitted, 5 not found (what: schedule | seat),
         6 seat sold or held by someone else, 7 hold limit reached, 13 the show has started,
         15 ticket limit reached
]]
local rcall = redis.call
local tokenKey, activeKey, scheduleKey, seatsKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local soldKey, holdsKey, holdKey, userHoldsKey = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local reservationKey, streamKey, userPaidKey = KEYS[9], KEYS[10], KEYS[11]
local user, jti, now, scheduleId, seat = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local rid, ttl, maxHolds = ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])
local catalogUntil, recordRetain, maxTickets = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])

--- @include "checkQueueToken"
local activeUntil = tonumber(rcall('ZSCORE', activeKey, user))
if not activeUntil or activeUntil <= now then return {2} end

local schedule = rcall('HMGET', scheduleKey, 'date', 'capacity')
if not schedule[2] then return {5, 'schedule'} end
local price = rcall('HGET', seatsKey, seat)
if not price then
  -- A sold-out schedule's seat keys leave Redis: every seat in range is then sold.
  local n = tonumber(seat)
  if rcall('EXISTS', seatsKey) == 0 and n >= 1 and n <= tonumber(schedule[2]) then return {6} end
  return {5, 'seat'}
end
if tonumber(schedule[1]) <= now then return {13} end
if rcall('SISMEMBER', soldKey, seat) == 1 then return {6} end
local holder = rcall('GET', holdKey)
if holder then
  local heldUntil = tonumber(rcall('ZSCORE', holdsKey, seat))
  if heldUntil and heldUntil > now then
    local bar = string.find(holder, '|', 1, true)
    -- The user's own live hold: the same answer again, nothing changes (expiry included).
    if bar and string.sub(holder, bar + 1) == user then
      return {0, tonumber(price), heldUntil, string.sub(holder, 1, bar - 1), 0}
    end
    return {6}
  end
end
rcall('ZREMRANGEBYSCORE', userHoldsKey, '-inf', now)
local live = rcall('ZCARD', userHoldsKey)
if live >= maxHolds then return {7} end
if live + rcall('SCARD', userPaidKey) >= maxTickets then return {15} end

local expiresAt = now + ttl
rcall('SET', holdKey, rid .. '|' .. user, 'PXAT', expiresAt)
-- Lapsed holds leave the schedule's zset a bounded number per call (readers count scores after now only).
local lapsed = rcall('ZRANGEBYSCORE', holdsKey, '-inf', now, 'LIMIT', 0, 100)
if #lapsed > 0 then rcall('ZREM', holdsKey, unpack(lapsed)) end
rcall('ZADD', holdsKey, expiresAt, seat)
-- An empty zset does not survive a reload, so the first hold gives it the catalog's lifetime.
if rcall('PTTL', holdsKey) == -1 then rcall('PEXPIREAT', holdsKey, catalogUntil) end
rcall('ZADD', userHoldsKey, expiresAt, rid)
rcall('PEXPIREAT', userHoldsKey, expiresAt)
rcall('HSET', reservationKey, 'u', user, 'sc', scheduleId, 'n', seat, 'p', price, 'x', expiresAt, 'st', 'held')
rcall('PEXPIREAT', reservationKey, expiresAt + recordRetain)
rcall('XADD', streamKey, '*', 'e', 'hold', 'r', rid, 'u', user, 'sc', scheduleId, 'n', seat, 'p', price,
  'x', expiresAt, 't', now)
return {0, tonumber(price), expiresAt, rid, 1}
