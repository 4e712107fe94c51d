-- ARGV: prefix, id, token, reason, retention_ms. Ends a running task whose handler stopped
-- after a cancellation. Returns 1, or 0 when the lease is lost.
local id, token, reason, retention_ms = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
if not holds(id, token) then return 0 end
finish(id, 'CANCELLED', { 'error', reason }, retention_ms, now_ms())
return 1
