--[[
  The queue token check every script that acts for a queued user opens with: the user's record
  in the queue token hash ("jti:seq", see src/redis/codecs.ts) must exist and name this jti.
  Answers code 1 (unknown or replaced token) otherwise.

  Expects the locals rcall, tokenKey (queue token hash), user and jti; leaves `token` (the
  record) and `sep` (the index of its ':') for the script to read the entry number from.
]]
local token = rcall('HGET', tokenKey, user)
if not token then return {1} end
local sep = string.find(token, ':', 1, true)
if string.sub(token, 1, sep - 1) ~= jti then return {1} end
