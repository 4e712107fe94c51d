-- ARGV: prefix, id, token, result, retention_ms, next_token, lease_ms. Completes the running
-- attempt and, in the same step, claims the next runnable task under `next_token`, as
-- complete.lua then claim.lua would: a busy worker saves a round trip and a script per task.
-- Returns {1, the claimed task's hash}, {1} when nothing is runnable, or {0} when `token` no
-- longer holds the lease (the completion is rejected and nothing is claimed).
local id, token, result, retention_ms = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
if not complete_running(id, token, result, retention_ms) then return { 0 } end
local claimed = claim_one(ARGV[6], tonumber(ARGV[7]))
if claimed then return { 1, claimed } end
return { 1 }
