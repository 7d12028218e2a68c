"""Staff notifications (issue 16; docs/leads.md, "Staff notifications"): rules in
config/staff_notifications.yml find what staff should hear about (a lead assigned, a lead reaching
MQL, a valuable customer at risk of churning, a large order, a form submitted), routing picks the
employee linked to the customer (owner, manager, all owners, first owner) or the team channel, and
delivery sends each notification exactly once through the activation engine's ledger (signed
webhooks for chat handles, email for email handles), respecting staff quiet hours, with an optional
daily digest per employee.

- config.py   the rules file, validated (errors name the file, the rule and the key)
- rules.py    each rule's candidates, read from the marts
- routing.py  who each candidate goes to, with the team fallback and its reason in words
- store.py    the state, schema tideline_staff (notifications, the send queue)
- planner.py  making notifications once; journey notify steps; daily digests; quiet hours
- deliver.py  sending what is due through the engine; statuses read back from the ledger
- run.py      one run: plan, digest, deliver
"""
