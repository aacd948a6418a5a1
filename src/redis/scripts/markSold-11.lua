--[[
  Mirrors a sale that SQL has already committed: the seat is sold, its hold is gone, the buyer's
  paid seats of the concert count it, and, once the buyer holds nothing more of the concert,
  the buyer's active slot frees at once for the next user in line. SQL stays the arbiter; this
  only keeps the fast gate in front of it in step.

  KEYS[1] sold set   KEYS[2] the seat's hold string   KEYS[3] holds zset   KEYS[4] the buyer's holds zset
  KEYS[5] reservation hash   KEYS[6] seats hash   KEYS[7] schedule hash   KEYS[8] active zset
  KEYS[9] queue token hash   KEYS[10] write-behind stream
  KEYS[11] the buyer's paid reservations of the concert (set of rids)
  ARGV[1] seat number   ARGV[2] reservation id   ARGV[3] userId   ARGV[4] now (ms)
  ARGV[5] entry number of the queue token that paid   ARGV[6] keep the catalog keys until (ms)
  ARGV[7] 1 when SQL found no live hold of the buyer left in the concert (the place may end), else 0

  Returns {0, soldOut (1 when the schedule has no seat left)}
]]
local rcall = redis.call
local soldKey, holdKey, holdsKey, userHoldsKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local reservationKey, seatsKey, scheduleKey, activeKey = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local tokenKey, streamKey, userPaidKey = KEYS[9], KEYS[10], KEYS[11]
local seat, rid, user, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local seq, catalogUntil, placeMayEnd = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7] == '1'

rcall('SADD', soldKey, seat)
if rcall('PTTL', soldKey) == -1 then rcall('PEXPIREAT', soldKey, catalogUntil) end
-- Sold for good: any hold still on the seat is moot.
rcall('DEL', holdKey)
rcall('ZREM', holdsKey, seat)
rcall('ZREM', userHoldsKey, rid)
if rcall('EXISTS', reservationKey) == 1 then rcall('HSET', reservationKey, 'st', 'paid') end
-- A set, not a counter: mirroring one sale twice counts it once.
rcall('SADD', userPaidKey, rid)
if rcall('PTTL', userPaidKey) == -1 then rcall('PEXPIREAT', userPaidKey, catalogUntil) end

-- The place ends only when neither SQL nor Redis knows a live hold of the buyer (a hold
-- taken here after SQL counted keeps it), and only the place that paid: a newer place of the
-- same user is left alone.
rcall('ZREMRANGEBYSCORE', userHoldsKey, '-inf', now)
local token = rcall('HGET', tokenKey, user)
if placeMayEnd and rcall('ZCARD', userHoldsKey) == 0 and token
    and struct.unpack('>I4', token, #token - 3) == seq then
  rcall('ZREM', activeKey, user)
  rcall('HDEL', tokenKey, user)
  rcall('XADD', streamKey, '*', 'e', 'done', 'u', user, 's', seq, 't', ARGV[4])
end

-- A sold-out schedule needs no seat keys: the seat map is then served from SQL.
local capacity = tonumber(rcall('HGET', scheduleKey, 'capacity'))
if capacity and rcall('SCARD', soldKey) >= capacity then
  rcall('DEL', seatsKey, holdsKey)
  return {0, 1}
end
return {0, 0}
