-- ARGV: prefix, id, token, result, retention_ms. Completes the running attempt. Returns 1, or
-- 0 when `token` no longer holds the lease (the completion of a stale worker is rejected).
local id, token, result, retention_ms = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
if not complete_running(id, token, result, retention_ms) then return 0 end
return 1
