-- ARGV: prefix, id, token, retention_ms. Hands a running task back to the place in the queue
-- it was taken from (on shutdown) without spending an attempt; a task with a pending
-- cancellation ends CANCELLED instead. Returns 1, or 0 when the lease is lost.
local id, token, retention_ms = ARGV[2], ARGV[3], tonumber(ARGV[4])
if not holds(id, token) then return 0 end
hand_back(id, retention_ms)
return 1
