-- ARGV: prefix, token, lease_ms. Takes the first runnable task and leases it to `token`, in
-- one step: the task moves from the pending set to the lease set. Returns the task's hash
-- as a flat field/value list, or false when nothing is runnable. `claim:<token>` names the
-- task for one lease, so that a worker whose reply was lost can hand it back (unclaim.lua).
return claim_one(ARGV[2], tonumber(ARGV[3]))
