"""Live sessions: who is connected under which grant, revoked when the policy changes.

`registry` keeps the grants we issued, following the connections' lifetime from the server's
connect/disconnect events; `revoker` re-decides them after a reload; `denylist` keeps the
identities that must not come back; `advisories` reads the server's rejections of our grants;
`service` wires it all to NATS (a system-account connection, kicks, the micro endpoint).
"""
