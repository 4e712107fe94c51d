-- ARGV: prefix, then per claim: token, lease_ms. Takes the first runnable tasks, one for each
-- token, and leases each to its token, in one step: each moves from the pending set to the
-- lease set. Returns, per token, the task's fields (`CLAIM_FIELDS`, common.lua), or false when
-- nothing more is runnable. Claims of idle workers that arrive together (the store batches
-- them) share one call, and their events one message.
local tokens, leases = {}, {}
for i = 2, #ARGV, 2 do
  tokens[#tokens + 1] = ARGV[i]
  leases[#leases + 1] = tonumber(ARGV[i + 1])
end
hold()
local claimed = claim_many(tokens, leases)
flush()
return claimed
