-- ARGV: prefix, token, retention_ms. Hands back the task claimed under `token` when the claim's
-- reply never reached its worker (a timeout or a dropped connection): the task returns to
-- its place in the queue without spending an attempt. Returns 1 when a task was handed back,
-- 0 when the claim never happened, expired, or its task moved on.
local token, retention_ms = ARGV[2], tonumber(ARGV[3])
local claim = P .. 'claim:' .. token
local id = redis.call('GET', claim)
if not id then return 0 end
redis.call('DEL', claim)
if not holds(id, token) then return 0 end
hand_back(id, retention_ms)
return 1
