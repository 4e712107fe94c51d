-- ARGV: prefix, id, token, lease_ms. Extends the lease. Returns 1 when renewed, 2 when
-- renewed but a cancellation was requested, 0 when the lease is lost.
local id, token, lease_ms = ARGV[2], ARGV[3], tonumber(ARGV[4])
if not holds(id, token) then return 0 end
if not redis.call('ZSCORE', K.leases, id) then return 0 end
redis.call('ZADD', K.leases, now_ms() + lease_ms, id)
if redis.call('HGET', task_key(id), 'cancel') == '1' then return 2 end
return 1
