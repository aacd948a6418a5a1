--[[
  The queue token check every script that acts for a queued user opens with: the user's record
  in the queue token hash (<jti><entry number u32>, see queueTokenRecord in
  src/redis/codecs.ts) must exist and name this jti. Answers code 1 (unknown or replaced token)
  otherwise.

  Expects the locals rcall, tokenKey (queue token hash), user and jti; leaves `token` (the
  record) and `tokenSeq` (its entry number).
]]
local token = rcall('HGET', tokenKey, user)
if not token or string.sub(token, 1, -5) ~= jti then return {1} end
local tokenSeq = struct.unpack('>I4', token, #token - 3)
