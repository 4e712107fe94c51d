-- ARGV: prefix, retention_ms. Drops dead-set entries of tasks older than the retention (their
-- hashes have expired). Returns the number dropped.
local retention_ms = tonumber(ARGV[2])
return redis.call('ZREMRANGEBYSCORE', K.dead, '-inf', now_ms() - retention_ms)
